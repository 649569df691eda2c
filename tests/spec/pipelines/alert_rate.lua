-- gw.alert from a handler, for tests/spec/alert_spec.lua: a retransmit
-- alert per destination, rate-limited by EVERY (default 1m), sent to the two
-- outputs the script declares.
local gw = require "nlgate"

gw.unix { path = "alert-a.sock" }
gw.unix { path = "alert-b.sock" }
local socks = gw.sockets { every = "1s" }

socks:each(function(s)
  if s.total_retrans and s.total_retrans > 10 then
    gw.alert {
      name = "retrans",
      severity = "error",
      key = s.dst,
      message = s.dst .. " retransmits",
      fields = { retrans = s.total_retrans, dport = s.dport },
      every = os.getenv("EVERY") or "1m",
    }
  end
end)
