-- A per-poll rule: the number of listening sockets and the longest accept
-- queue, once per poll, from a :batch handler.
local gw = require "nlgate"

local feed = gw.unix { path = os.getenv("FEED") or "testing-batch.sock" }
local socks = gw.sockets { every = "1s", proto = "tcp", states = "listen" }

socks:batch(function(b)
  local n, longest = 0, 0
  for _, s in b:records() do
    n = n + 1
    if s.rqueue > longest then longest = s.rqueue end
  end
  feed:send("listen.summary", { listeners = n, longest_queue = longest, size = #b })
end)
