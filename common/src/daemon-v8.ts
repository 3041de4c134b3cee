/**
 * V8 tiering for a daemon that runs for months: Maglev off.
 *
 * V8 compiles a function to native code in tiers: Sparkplug (baseline), Maglev (mid tier, reached
 * after a few hundred calls) and TurboFan (only hot code). A daemon keeps meeting rare events (a
 * camera that hangs, a viewer storm, a full disk, a scrape every 15 s), so Maglev keeps finding
 * functions that have just become lukewarm and compiles them, for 15-20 minutes after a start. The
 * soak (docs/soak.md, "What the soak found") traced about 300 such compiles in every 10-minute relay
 * life after its 2-minute warm-up: +0.5 to +0.8 MiB of V8 code space, plus the compiler threads' malloc
 * arenas, in every life, which is what kept `rss-flat` from passing. With Maglev off those functions stay
 * in the interpreter or Sparkplug and only hot ones reach TurboFan: code space stayed flat over the same
 * life, and the hot path (frame fan-out, socket writes) is TurboFan code either way (make bench).
 *
 * Set at runtime (node:v8 setFlagsFromString) so that every way of starting the daemon gets it: the
 * images, systemd units and a bare `node .../main.js`. A side-effect module, imported first by each
 * daemon's main.ts (`import '@camrelay/common/dist/daemon-v8'`), so that the flag is set before the
 * daemon loads its modules; the library (index.ts) does not import it, so tests and tools keep V8's
 * defaults.
 */
import v8 from 'node:v8';

export const DAEMON_V8_FLAGS = ['--no-maglev'] as const;

for (const flag of DAEMON_V8_FLAGS) v8.setFlagsFromString(flag);
