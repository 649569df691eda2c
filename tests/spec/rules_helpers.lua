-- Shared by the rules_*_spec.lua files: a pipeline around one rule
-- (pipelines/rules_one.lua), records with sensible defaults, and the alert
-- frames a pipeline sent.
local testing = require "nlgate.testing"

local h = {}

-- A pipeline with RULE = rule, OPTS = opts (Lua text), SOURCE = source.
function h.pipeline(rule, opts, source, clock)
  return testing.pipeline("tests/spec/pipelines/rules_one.lua", {
    clock = clock or 1001,
    env = { RULE = rule, OPTS = opts or "{}", SOURCE = source or "sockets" },
  })
end

local n = 0
local function merge(base, t)
  for k, v in pairs(t or {}) do base[k] = v end
  return base
end

-- An established TCP socket (a fresh cookie unless t gives one).
function h.sock(t)
  n = n + 1
  return merge({ family = "inet", proto = "tcp", state = "ESTAB", src = "10.0.0.1",
                 sport = 30000 + n % 20000, dst = "10.0.0.2", dport = 443, cookie = n,
                 inode = n }, t)
end

function h.listener(t)
  n = n + 1
  return merge({ family = "inet", proto = "tcp", state = "LISTEN", src = "0.0.0.0",
                 sport = 80, rqueue = 0, wqueue = 128, cookie = n, inode = n }, t)
end

-- A conntrack event (a fresh id unless t gives one).
function h.ct(t)
  n = n + 1
  return merge({ event = "new", id = n, family = "inet", proto = "tcp",
                 orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 40000 + n % 20000,
                 orig_dport = 443, reply_src = "10.0.0.2", reply_dst = "10.0.0.1",
                 reply_sport = 443, reply_dport = 40000 + n % 20000 }, t)
end

function h.flow(t)
  n = n + 1
  return merge({ proto = "tcp", family = "inet", src = "10.0.0.1", sport = 40000 + n % 20000,
                 dst = "10.0.0.2", dport = 443, packets = 10, bytes = 1000,
                 end_reason = "fin" }, t)
end

-- Push the records of one poll of the sockets source and end it.
function h.poll(p, records)
  for _, r in ipairs(records) do p:push("sock", r) end
  p:poll("sockets")
end

-- The records of alert.<name> frames, optionally only those in `state`.
function h.alerts(p, name, state)
  local out = {}
  for _, f in ipairs(p:sent("alert." .. name)) do
    if f.tag == "alert." .. name and (not state or f.record.state == state) then
      out[#out + 1] = f.record
    end
  end
  return out
end

return h
