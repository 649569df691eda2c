-- The default pipeline (`make run`, `nlgate run` without a script):
-- poll sockets every 2 s, feed every socket and every alert to ./nlgate.sock,
-- and keep a compact live summary on the terminal. With CAP_NET_ADMIN it also
-- follows conntrack (events to the feed as ct.new / ct.destroy, counts in the
-- summary); without it, it says so once and goes on with sockets alone.
-- NLGATE_CT=off turns conntrack off; NLGATE_CT_EVENTS picks the events.
local gw = require "nlgate"
local rules = require "nlgate.rules"

local every = os.getenv("NLGATE_EVERY") or "2s"
local feed = gw.unix { path = os.getenv("NLGATE_FEED") or "nlgate.sock" }
local socks = gw.sockets { every = every, proto = "tcp,udp", info = "tcp_info,cong" }
local fancy = (os.getenv("TERM") or "dumb") ~= "dumb" and not os.getenv("NLGATE_PLAIN")

-- The rule library (scripts/nlgate/rules/): each rule raises alert.<name>
-- frames on the feed itself; on_alert also lists them in the summary.
local alerts = {}    -- alerts raised or resolved since the last summary
local function on_alert(a)
  local rec = a.fields or {}
  alerts[#alerts + 1] = string.format("%-14s %-8s %s  %s", a.name, a.state, tostring(a.key),
                                      a.message or rec.message or "")
end
local function rule(name, opts)
  opts = opts or {}
  opts.on_alert = on_alert
  return require("nlgate.rules." .. name).new(opts)
end

-- conntrack, if we may: a failure (not root, no nf_conntrack) is not fatal
local ct, ct_count = nil, { new = 0, update = 0, destroy = 0, listed = 0 }
if (os.getenv("NLGATE_CT") or "on") ~= "off" then
  local ok, src = pcall(gw.conntrack, { events = os.getenv("NLGATE_CT_EVENTS") or "new,destroy" })
  if ok then
    ct = src
    rules.attach(ct, { rule("ct_pressure"), rule("long_lived") }, { kind = "ct", each = function(e)
      feed:send("ct." .. e.event, e)
      local k = e.dump and "listed" or e.event
      ct_count[k] = ct_count[k] + 1
    end })
  else
    gw.log("conntrack skipped: " .. tostring(src))
  end
end

local sock_rules = {
  rule("retrans_storm"),   -- retransmits per peer per second, over 10 s windows
  rule("slow_rtt"),        -- a peer's RTT above 200 ms
  rule("rtt_outlier"),     -- a peer's RTT 3x its own baseline
  rule("accept_queue"),    -- a listener's accept queue at 90 % of its backlog
  rule("half_open"),       -- SYN-RECV sockets piling up on a port
  rule("new_listener"),    -- a port that starts listening after 10 min of learning
  rule("field_threshold", { name = "rqueue", field = "rqueue", above = 4 << 20, clear = 1 << 20,
                            where = function(s) return s.state ~= "LISTEN" end }),
}

local function line(s, v)
  return string.format("  %-5s %s:%d → %s:%d  %s", s.proto, s.src, s.sport, s.dst or "*",
                       s.dport or 0, v)
end

local function summary(batch)
  local by_state, by_retrans, by_rtt = {}, {}, {}
  for _, s in batch:records() do
    by_state[s.state] = (by_state[s.state] or 0) + 1
    if s.proto == "tcp" then
      rules.top(by_retrans, 5, s, function(r) local v = r.total_retrans; return v and v > 0 and v or nil end)
      rules.top(by_rtt, 5, s, function(r) return r.state == "ESTAB" and r.rtt_us or nil end)
    end
  end
  -- the top lists hold views that die with this handler: copy what we print
  local out = {}
  out[#out + 1] = string.format("nlgate  %s  %d sockets  (poll %d ms, feed clients %d)",
    os.date("%H:%M:%S"), #batch, batch:stats().last_ms or 0, feed:stats().clients or 0)
  local states = {}
  for st, n in pairs(by_state) do states[#states + 1] = string.format("%s %d", st, n) end
  table.sort(states)
  out[#out + 1] = "  " .. table.concat(states, "  ")
  local ct_line
  if ct then
    local st = ct:stats()
    ct_line = { new = ct_count.new, destroy = ct_count.destroy, live = st.live,
                lost = st.lost, synthetic = st.synthetic }
    local extra = ""
    if ct_count.listed > 0 then extra = extra .. string.format("  %d listed at start", ct_count.listed) end
    if st.lost > 0 then extra = extra .. string.format("  %d lost (resynced)", st.lost) end
    if st.synthetic > 0 then extra = extra .. string.format("  %d ended unseen", st.synthetic) end
    out[#out + 1] = string.format("conntrack: %d new  %d destroyed  %d live%s", ct_count.new,
                                  ct_count.destroy, st.live, extra)
    ct_count.new, ct_count.update, ct_count.destroy, ct_count.listed = 0, 0, 0, 0
  end
  if #by_retrans > 0 then
    out[#out + 1] = "worst by retransmits:"
    for _, e in ipairs(by_retrans) do out[#out + 1] = line(e.s, e.v .. " retrans") end
  end
  if #by_rtt > 0 then
    out[#out + 1] = "worst by RTT:"
    for _, e in ipairs(by_rtt) do out[#out + 1] = line(e.s, string.format("%.2f ms", e.v / 1000)) end
  end
  out[#out + 1] = #alerts > 0 and "flagged:" or "flagged: nothing"
  for _, a in ipairs(alerts) do out[#out + 1] = "  " .. a end
  alerts = {}
  feed:send("summary", { sockets = #batch, states = by_state, conntrack = ct_line })
  if fancy then io.write("\27[H\27[2J") end
  io.write(table.concat(out, "\n"), "\n\n")
  io.flush()
end

rules.attach(socks, sock_rules, { kind = "sock", batch = summary,
                                  each = function(s) feed:send("sock", s) end })

-- every counter nlgate keeps, in-band for the feed's consumers
gw.every(os.getenv("NLGATE_STATS_EVERY") or "10s", function()
  feed:send("nlgate.stats", gw.stats())
end)

gw.log("default pipeline: polling sockets every " .. every .. ", feed at " ..
       (os.getenv("NLGATE_FEED") or "nlgate.sock") .. " (try `nlgate tail`)" ..
       (ct and "; following conntrack events" or ""))
