/**
 * The soak's view of the running stack, from the host: the compose wrapper and project that
 * scripts/test-compose.sh made, `docker` for containers, their addresses on the project's networks for
 * what is not published (metrics), and the published ports on 127.0.0.1 for what viewers use.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { descendants, ROOT } from '../../test-support';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function ok(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 500)}`);
  return r.stdout;
}

export const docker = (args: string[], timeoutMs = 60_000) => ok('docker', args, timeoutMs);

interface Inspect {
  Id: string;
  Config: { Env: string[] | null };
  State: { Running: boolean; StartedAt: string; OOMKilled: boolean; Pid: number };
  RestartCount: number;
  NetworkSettings: {
    Ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
    Networks: Record<string, { IPAddress: string }>;
  };
}

export class Stack {
  private readonly ids = new Map<string, string>();

  constructor(
    readonly project: string,
    /** $CAMRELAY_TEST_DIR/compose: every compose command with the stack's files, project and profile */
    readonly composeWrapper: string,
    readonly services: string[],
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): Stack {
    const dir = env.CAMRELAY_TEST_DIR;
    const project = env.COMPOSE_PROJECT_NAME;
    if (!dir || !project) throw new Error('run the soak through soak/run.sh (make soak): it starts the stack first');
    return new Stack(project, `${dir}/compose`, (env.CAMRELAY_TEST_SERVICES ?? '').split(' ').filter(Boolean));
  }

  compose(args: string[], timeoutMs = 120_000): Promise<string> {
    return ok(this.composeWrapper, args, timeoutMs);
  }

  async cid(service: string): Promise<string> {
    const known = this.ids.get(service);
    if (known) return known;
    const id = (await this.compose(['ps', '-q', service])).trim();
    if (!id) throw new Error(`service ${service} has no container`);
    this.ids.set(service, id);
    return id;
  }

  async inspect(services: string[]): Promise<Map<string, Inspect>> {
    const ids = await Promise.all(services.map((s) => this.cid(s)));
    const list = JSON.parse(await docker(['inspect', ...ids])) as Inspect[];
    return new Map(services.map((s, i) => [s, list[i]])); // docker inspect answers in the order asked
  }

  async inspectOne(service: string): Promise<Inspect> {
    return (await this.inspect([service])).get(service)!;
  }

  /** The container's address on the project's network `home` or `vps`. */
  async ip(service: string, network: 'home' | 'vps'): Promise<string> {
    const nets = (await this.inspectOne(service)).NetworkSettings.Networks;
    const key = Object.keys(nets).find((k) => k === `${this.project}_${network}`);
    const ip = key ? nets[key].IPAddress : '';
    if (!ip) throw new Error(`${service} has no address on network ${network}`);
    return ip;
  }

  /** Host port Docker picked for a container port (it may pick another one after a restart). */
  async published(service: string, containerPort: number): Promise<number> {
    const b = (await this.inspectOne(service)).NetworkSettings.Ports[`${containerPort}/tcp`];
    if (!b || b.length === 0) throw new Error(`${service}:${containerPort} is not published`);
    return Number(b[0].HostPort);
  }

  async env(service: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const kv of (await this.inspectOne(service)).Config.Env ?? []) {
      const i = kv.indexOf('=');
      out[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return out;
  }

  async pid(service: string): Promise<number> {
    const pid = (await this.inspectOne(service)).State.Pid;
    if (!pid) throw new Error(`${service} is not running`);
    return pid;
  }

  /**
   * Whether something listens on `port` in the container's network namespace, read from its
   * /proc/<pid>/net/tcp{,6} on the host (like the tunnel-server's own health check: no connection
   * that sshd would log or count).
   */
  async listening(service: string, port: number): Promise<boolean> {
    const pid = await this.pid(service);
    const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    return ['tcp', 'tcp6'].some((f) => {
      try {
        return fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8').split('\n').slice(1)
          .some((l) => { const c = l.trim().split(/\s+/); return c[1]?.endsWith(hex) && c[3] === '0A'; });
      } catch {
        return false;
      }
    });
  }

  /**
   * Host pids of the daemon's processes: the container's first process and its descendants. What
   * `docker exec` starts (the health check, the soak's own `du`) hangs off containerd's shim, not
   * off the daemon, and is left out: a health check's `node -e fetch(...)` is a whole Node runtime
   * that would otherwise show as 15 MiB spikes in the daemon's memory.
   */
  async pids(service: string): Promise<number[]> {
    const [out, root] = await Promise.all([docker(['top', await this.cid(service), '-eo', 'pid,ppid']), this.pid(service)]);
    return descendants(parseTop(out), root);
  }

  /** `docker <args> <the service's container>`: stop, start, restart (no compose start-up on the way). */
  async docker(args: string[], service: string, timeoutMs = 120_000): Promise<string> {
    return docker([...args, await this.cid(service)], timeoutMs);
  }

  async exec(service: string, argv: string[], timeoutMs = 30_000): Promise<string> {
    return docker(['exec', await this.cid(service), ...argv], timeoutMs);
  }

  /**
   * Sets a fake camera's mode through its control endpoint, which listens on the container's loopback
   * only: one HTTP request from bash inside the container's network namespace (nsenter, root). Not
   * `docker exec node ...`: starting Node in the container takes seconds on a loaded machine, which
   * would blur when the fault began.
   */
  async cameraMode(service: string, mode: string): Promise<void> {
    const pid = await this.pid(service);
    const req = `exec 3<>/dev/tcp/127.0.0.1/9102 && printf 'POST /mode?m=${mode} HTTP/1.0\\r\\nHost: camera\\r\\n\\r\\n' >&3 && head -1 <&3`;
    const out = await ok('nsenter', ['-t', String(pid), '-n', 'bash', '-c', req], 15_000);
    if (!/^HTTP\/1\.[01] 200 /.test(out)) throw new Error(`${service}: mode ${mode} answered ${JSON.stringify(out.trim())}`);
  }

  /** Every log line of the container with docker's timestamp (stdout and stderr). */
  async logs(service: string): Promise<string[]> {
    const r = await run('docker', ['logs', '-t', await this.cid(service)], 120_000);
    if (r.code !== 0) throw new Error(`docker logs ${service}: ${r.stderr.trim()}`);
    return `${r.stdout}\n${r.stderr}`.split('\n').filter(Boolean);
  }
}

/** `docker top <c> -eo pid,ppid` as [pid, ppid] pairs. */
export function parseTop(out: string): [number, number][] {
  return out.split('\n').slice(1)
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number])
    .filter(([pid, ppid]) => pid > 0 && Number.isFinite(ppid));
}

