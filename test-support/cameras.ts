/**
 * The camera list of issue #9, as the docs show it: two cameras through the tunnel (one public with a
 * per-camera max_fps), a push camera and one the relay reaches itself. Tests of every part that reads
 * the list (common, relay, tunnel-agent, the stack) start from it.
 */
export const EXAMPLE_CAMERAS_YAML = `
cameras:
  front:
    lan: 192.168.1.100:1234
    raw_port: 8080
  garden:
    lan: 192.168.1.101:1234
    raw_port: 8082
    max_fps: 10
    public: true
  printer:
    mode: push
    ingest_port: 1236
    raw_port: 8083
  bench:
    host: 127.0.0.1
    port: 5001
    raw_port: 8084
`;
