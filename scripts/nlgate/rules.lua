-- The rule library shipped with nlgate: small, pure functions over socket
-- records (record views or plain tables), used by the default pipeline and
-- meant to be reused in your own. Each rule returns a reason string or nil.
local rules = {}

rules.defaults = {
  rtt_us = 200000,        -- smoothed RTT above 200 ms
  retrans_delta = 10,     -- more than 10 segments retransmitted since last poll
  backlog_ratio = 0.9,    -- listener accept queue at 90 % of its limit
  rqueue_bytes = 4 << 20, -- 4 MiB unread in a receive queue
}

-- A listener whose accept queue is nearly full drops new connections.
function rules.backlog(s, t)
  if s.state == "LISTEN" and s.wqueue and s.wqueue > 0
     and s.rqueue >= s.wqueue * (t or rules.defaults).backlog_ratio then
    return string.format("accept queue %d of %d", s.rqueue, s.wqueue)
  end
end

function rules.slow_rtt(s, t)
  local rtt = s.rtt_us
  if rtt and s.state == "ESTAB" and rtt > (t or rules.defaults).rtt_us then
    return string.format("rtt %.1f ms", rtt / 1000)
  end
end

function rules.rqueue(s, t)
  if s.rqueue and s.state ~= "LISTEN" and s.rqueue > (t or rules.defaults).rqueue_bytes then
    return string.format("%d bytes unread", s.rqueue)
  end
end

-- Retransmits since the previous poll; `seen` maps socket cookie → count.
function rules.retrans(s, seen, t)
  local total = s.total_retrans
  if not total then return nil end
  local key = s.cookie
  local before = seen[key]
  seen[key] = total
  if before and total - before > (t or rules.defaults).retrans_delta then
    return string.format("%d retransmits since last poll", total - before)
  end
end

-- Keep the n largest by key(s) in `top` (a small array, largest first).
-- A record view is copied on entry only, so it outlives its handler.
function rules.top(top, n, s, key)
  local v = key(s)
  if not v then return end
  if #top == n and v <= top[n].v then return end
  local entry = { v = v, s = type(s) == "userdata" and s:copy() or s }
  local i = #top + 1
  while i > 1 and top[i - 1].v < v do i = i - 1 end
  table.insert(top, i, entry)
  if #top > n then top[#top] = nil end
end

return rules
