/**
 * V8 tiering for the relay, which runs for months: Maglev off.
 *
 * V8 compiles a function to native code in tiers: Sparkplug (baseline), Maglev (mid tier, reached
 * after a few hundred calls) and TurboFan (only hot code). A daemon keeps meeting rare events (a
 * camera that hangs, a viewer storm, a full disk, a scrape every 15 s), so Maglev keeps finding
 * functions that have just become lukewarm and compiles them, for 15-20 minutes after a start. The
 * soak (docs/soak.md, "What the soak found") traced about 300 such compiles in every 10-minute relay
 * life after its 2-minute warm-up: +0.5 to +0.8 MiB of V8 code space, plus the compiler threads' malloc
 * arenas, in every life: a large part of what keeps `rss-flat` from passing. With Maglev off those
 * functions stay in the interpreter or Sparkplug and only hot ones reach TurboFan: in the same
 * diagnostic schedule code space then stayed flat, and the hot path (frame fan-out, socket writes) is
 * TurboFan code either way (make bench).
 *
 * Set at runtime (node:v8 setFlagsFromString) so that every way of starting the relay gets it: the
 * image and a bare `node relay/dist/main.js`. A side-effect module that main.ts imports first, so that
 * the flag is set before the relay loads its modules; nothing else imports it, so tests that load the
 * relay in-process keep V8's defaults.
 *
 * Not the tunnel-agent: it is not restarted by the soak, its memory passed there with Maglev, and its
 * throughput depends on Maglev (ssh2's packet handling in JS): `make bench`'s 50-in-flight tunnel
 * step ran about 10 % slower without it. The relay's fan-out and MJPEG steps did not move beyond
 * noise (2 to 3 % on the raw fan-out).
 */
import v8 from 'node:v8';

v8.setFlagsFromString('--no-maglev');
