-- require "nlgate.testing": run a pipeline file in a test (busted), with no
-- kernel, no sockets and no waiting. The file runs unchanged, in its own
-- sandboxed state as under `nlgate run`, against a dry gateway: its sources
-- are fakes the test pushes records into, its outputs record what they are
-- sent, and its clock is virtual — timers and windows fire when the test
-- advances it. The C half is luaopen_nlgate_testing_core in nlgate.so
-- (bindings/lua_testing.c), found on LUA_CPATH through nlgate.so itself.
--
--   local testing = require "nlgate.testing"
--   local p = testing.pipeline("rules/my.lua", { clock = 0, env = { X = "1" } })
--   p:push("sock", { state = "ESTAB", src = "10.0.0.1", sport = 5000, rtt_us = 250000 })
--   p:poll("sockets")                 -- a poll ends: :batch handlers run
--   p:advance("10s")                  -- timers due fire, in order
--   for _, f in ipairs(p:sent("alert.")) do print(f.tag, f.time, f.record.name, f.output) end
local core = require "nlgate.testing_core"

local M = {}

-- testing.pipeline(path [, { clock = seconds, env = { NAME = "value" },
-- lua_path = "dir/?.lua;..." }]) → a pipeline p:
--   p:push(kind_or_source_name, table_or_view) → sources it went to
--   p:poll([kind_or_source_name]) → sources polled (all without a name)
--   p:advance(duration) → timers fired ("10s", "500ms" or seconds)
--   p:sent([tag_prefix [, output_name]]) → { {tag=, time=, record=, output=}, ... }
--   p:clear()      forget the frames sent so far
--   p:errors()     handler errors logged so far, { "file:line: message ...", ... }
--   p:stats()      the pipeline's gw.stats()
--   p:now()        the virtual clock, seconds
--   p:stopped()    the script called gw.stop()
--   p:close()      close the pipeline's state (also when collected)
-- A syntax error, a raise or a bad option at the file's top level raises
-- here with the file's "file:line: message".
function M.pipeline(path, opts)
  return core.pipeline(path, opts or {})
end

-- testing.record(kind, table) → a record view of that kind, built from the
-- table by the kind's schema (what p:push does); unknown fields raise.
M.record = core.record

-- testing.replay(path) → { view, ... }: the sockets of a recorded dump
-- (`nlgate dump sockets --raw FILE`, tests/fixtures/sock_*.bin), or the
-- packets of a pcap/pcapng file (pkt views; a tcpdump filter may follow).
M.replay = core.replay

-- testing.frames(p, prefix) → { record, ... }: just the records.
function M.records(p, prefix, output)
  local out = {}
  for i, f in ipairs(p:sent(prefix, output)) do out[i] = f.record end
  return out
end

return M
