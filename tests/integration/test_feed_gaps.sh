#!/usr/bin/env bash
# Every frame a slow feed client misses is announced to it, the last ones
# too: a script sends 200,000 numbered frames over ~6 s to a feed with a
# 64 KiB queue, the last 20,000 in one burst, logs how many it sent and
# stops at once; a reader that sleeps between reads (so it loses about half)
# counts what it receives and the `missed` of the nlgate.gap frames until
# EOF. Checks, exactly: received + announced = sent; numbers only go up;
# each hole between two received frames is what the gap frames in it
# announce, and so is the tail after the last one (the end of the burst,
# announced at shutdown: no later frame came to carry it). Needs no root.
. "$(dirname "$0")/lib.sh"
nlg_require_nlgate
nlg_require_msgpack
nlg_tmpdir

feed=$NLG_TMP/feed.sock
log=$NLG_TMP/gw.log
out=$NLG_TMP/reader.out
N=200000

# Frames of ~180 bytes at ~30,000/s (5.4 MB/s) against a reader that takes
# at most 64 KiB per 20 ms (3 MB/s): about half is dropped. The timer
# catches up on the clock, so a slow build sends as many, in bigger steps.
# The final burst (3.6 MB) overflows the queue whatever the reader does.
cat >"$NLG_TMP/gaps.lua" <<LUA
local gw = require "nlgate"
local N, BURST, SECONDS = $N, 20000, 6
local feed = gw.unix { path = "$feed", queue = "64k" }
local pad = string.rep("x", 150)
local sent, t0 = 0, nil
gw.every("1ms", function()
  if sent >= N then return end
  if not t0 then
    if gw.stats().unix[1].clients < 1 then return end -- the reader first
    t0 = gw.now()
  end
  local want = math.min(N - BURST, math.floor((gw.now() - t0) * N / SECONDS) + 1)
  if want == N - BURST and sent == want then want = N end
  while sent < want do
    sent = sent + 1
    feed:send("tick", { n = sent, pad = pad })
  end
  if sent == N then
    local st = gw.stats().unix[1]
    gw.log(string.format("SENT %d in %.1fs dropped=%d gaps=%d", sent, gw.now() - t0,
      st.dropped, st.gaps))
    gw.stop()
  end
end)
LUA

cat >"$NLG_TMP/reader.py" <<'PY'
import socket, sys, time
import msgpack

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
unp = msgpack.Unpacker(raw=False, timestamp=0)
received = missed = gaps = last = pending = total = 0
bad = []
while True:
    data = s.recv(65536)
    if not data:
        break
    total += len(data)
    unp.feed(data)
    for tag, _, rec in unp:
        if tag == "nlgate.gap":
            if rec["missed"] <= 0:
                bad.append("gap of %r" % rec["missed"])
            missed += rec["missed"]
            pending += rec["missed"]
            gaps += 1
        elif tag == "tick":
            n = rec["n"]
            if n <= last:
                bad.append("%d after %d" % (n, last))
            elif n - last - 1 != pending:
                bad.append("hole %d..%d announced as %d" % (last + 1, n - 1, pending))
            received += 1
            last, pending = n, 0
        else:
            bad.append("tag %r" % tag)
    time.sleep(0.02)  # a slow reader
if unp.tell() != total:
    bad.append("%d bytes of a partial frame at EOF" % (total - unp.tell()))
print("received=%d missed=%d gaps=%d last=%d tail=%d bad=%d %s" %
      (received, missed, gaps, last, pending, len(bad), "; ".join(bad[:5])))
PY

nlg_spawn gwpid "$NLGATE" run "$NLG_TMP/gaps.lua" 2>"$log"
nlg_wait_socket "$feed" 10
nlg_spawn rdpid "$NLG_PY" "$NLG_TMP/reader.py" "$feed" >"$out"
nlg_wait_exit "$gwpid" 120 || nlg_fail "nlgate did not stop cleanly (rc $?): $(cat "$log")"
nlg_wait_exit "$rdpid" 60 || nlg_fail "the reader failed (rc $?): $(cat "$out")"

sent=$(sed -n 's/.*SENT \([0-9]*\) .*/\1/p' "$log")
[ "$sent" = "$N" ] || nlg_fail "the script did not log SENT $N: $(cat "$log")"
nlg_log "$(grep SENT "$log" | sed 's/.*SENT/sent/')"
nlg_log "reader: $(cat "$out")"
read -r received missed gaps last tail nbad < <(sed -n \
	's/^received=\([0-9]*\) missed=\([0-9]*\) gaps=\([0-9]*\) last=\([0-9]*\) tail=\([0-9]*\) bad=\([0-9]*\).*/\1 \2 \3 \4 \5 \6/p' "$out")
[ -n "${nbad:-}" ] || nlg_fail "no summary from the reader: $(cat "$out")"
[ "$nbad" -eq 0 ] || nlg_fail "stream errors: $(cat "$out")"
[ $((received + missed)) -eq "$sent" ] ||
	nlg_fail "received $received + announced missed $missed = $((received + missed)), sent $sent"
[ $((sent - last)) -eq "$tail" ] ||
	nlg_fail "after the last frame received ($last), $((sent - last)) were sent, $tail announced"
[ "$missed" -gt 0 ] || nlg_fail "the reader missed nothing: not slow enough to test anything"
[ "$tail" -gt 0 ] || nlg_fail "the burst's tail was not dropped: the shutdown path went untested"
[ "$received" -gt 0 ] || nlg_fail "the reader received nothing"
grep -q "never announced" "$log" && nlg_fail "the feed closed with misses unannounced: $(cat "$log")"
nlg_log "ok: received $received + announced $missed = sent $sent, in $gaps gap frames"
