-- require "nlgate.testing": pipelines run dry on a virtual clock. The
-- pipeline files are tests/spec/pipelines/testing_*.lua; each also passes
-- `nlgate check` here and runs under `nlgate run` in
-- tests/integration/test_testing.sh.
local testing = require "nlgate.testing"

local dir = "tests/spec/pipelines/"
local slow, timers, batch = dir .. "testing_slow.lua", dir .. "testing_timers.lua",
  dir .. "testing_batch.lua"

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function tags(frames)
  local t = {}
  for i, f in ipairs(frames) do t[i] = f.tag end
  return t
end

describe("testing.pipeline", function()
  it("runs the file's handlers on pushed records and records what they send", function()
    local p = testing.pipeline(slow, { clock = 1000, env = { MAX_RTT_MS = "100" } })
    assert.are.equal(1, p:push("sock", { state = "ESTAB", src = "10.0.0.1", sport = 5000,
      dst = "10.0.0.2", dport = 443, rtt_us = 250000 }))
    p:push("sock", { state = "ESTAB", src = "10.0.0.1", sport = 5001, rtt_us = 50000 })
    -- the filter keeps ESTAB only
    p:push("sockets", { state = "LISTEN", src = "10.0.0.1", sport = 5002, rtt_us = 900000 })
    local frames = p:sent("alert.")
    assert.are.equal(1, #frames)
    local f = frames[1]
    assert.are.equal("alert.slow", f.tag)
    assert.are.equal("unix", f.output)
    assert.are.equal(1000, f.time)
    assert.are.same({ src = "10.0.0.1", sport = 5000, dst = "10.0.0.2", dport = 443,
      rtt_ms = 250, at = 1000 }, f.record)
    local st = p:stats()
    assert.are.equal(2, st.sockets[1].delivered)
    assert.are.equal(1, st.sockets[1].script_filtered)
    assert.are.equal(0, st.sockets[1].polls) -- a fake's own counters are zeros
    assert.are.equal(1, st.unix[1].offered)
    p:close()
  end)

  it("answers os.getenv from env alone", function()
    local p = testing.pipeline(slow, { env = {} }) -- MAX_RTT_MS: the default 200
    p:push("sock", { state = "ESTAB", src = "10.0.0.1", rtt_us = 150000 })
    assert.are.equal(0, #p:sent())
    p:push("sock", { state = "ESTAB", src = "10.0.0.1", rtt_us = 250000 })
    assert.are.equal(1, #p:sent())
    p:close()
  end)

  it("raises on an unknown field or a bad value, delivering nothing", function()
    local p = testing.pipeline(slow)
    assert.has_error(function() p:push("sock", { state = "ESTAB", rtt_ms = 3 }) end,
      "p:push: unknown field 'rtt_ms' for sock (see `nlgate fields sock`)")
    assert.error_matches(function() p:push("sock", { rtt_us = "slow" }) end,
      "field 'rtt_us' takes an integer")
    assert.error_matches(function() p:push("sock", { sport = 70000 }) end, "does not fit 16 bits")
    assert.error_matches(function() p:push("sock", { state = "ESTABLISHED-ISH" }) end,
      "unknown name 'ESTABLISHED%-ISH'")
    assert.error_matches(function() p:push("sock", { src = "10.0.0.300" }) end,
      "takes an address as text")
    assert.error_matches(function() p:push("ct", { event = "new" }) end,
      "no source named or of kind 'ct'")
    assert.are.equal(0, p:stats().sockets[1].delivered)
    p:close()
  end)

  it("takes enums by name or number, and a view", function()
    local p = testing.pipeline(slow, { env = { MAX_RTT_MS = "1" } })
    p:push("sock", { state = 1, src = "::1", rtt_us = 5000 }) -- 1 is ESTAB
    p:push("sock", testing.record("sock", { state = "estab", src = "10.1.1.1", rtt_us = 7000 }))
    local frames = p:sent()
    assert.are.equal(2, #frames)
    assert.are.equal("::1", frames[1].record.src)
    assert.are.equal("10.1.1.1", frames[2].record.src)
    p:close()
  end)

  it("logs and counts handler errors as under run, and offers them", function()
    local p = testing.pipeline(slow)
    p:push("sock", { state = "ESTAB", sport = 666 })
    p:push("sock", { state = "ESTAB", sport = 666 })
    p:push("sock", { state = "ESTAB", sport = 667 })
    local errs = p:errors()
    assert.are.equal(2, #errs)
    assert.truthy(errs[1]:find("testing_slow.lua:17: port of the beast", 1, true))
    assert.are.equal(2, p:stats().script.errors)
    assert.are.equal(2, p:stats().sockets[1].handler_errors)
    p:close()
  end)

  it("fires timers in order of deadline, the right number of times", function()
    local p = testing.pipeline(timers, { clock = 100 })
    -- every 10 s from 110; every 7 s from 107, each echoed 1 s later; once at 125
    assert.are.equal(0, #p:sent())
    assert.are.equal(0, p:advance("6s"))
    assert.are.equal(106, p:now())
    assert.are.equal(1, p:advance(1)) -- 107: the 7 s timer, which sends nothing
    assert.are.equal(0, #p:sent())
    assert.are.equal(2, p:advance("3s")) -- 108 the echo, 110 the tick
    assert.are.same({ "echo", "tick" }, tags(p:sent()))
    assert.are.same({ 108, 110 }, { p:sent()[1].time, p:sent()[2].time })
    p:clear()
    assert.are.equal(0, #p:sent())
    p:advance("50s") -- to 160
    local frames = p:sent()
    local last = 0
    for _, f in ipairs(frames) do
      assert.is_true(f.time >= last) -- in send order, which is deadline order
      assert.are.equal(f.time, f.record.now) -- timers get the gateway's clock
      last = f.time
    end
    local n = {}
    for _, f in ipairs(frames) do n[f.tag] = (n[f.tag] or 0) + 1 end
    assert.are.equal(5, n.tick) -- 120 .. 160
    assert.are.equal(1, n.once) -- 125
    assert.are.equal(7, n.echo) -- 115 .. 157
    assert.are.equal(160, p:now())
    assert.are.equal(2 + 5 + 1 + 7, p:stats().unix[1].offered)
    p:close()
  end)

  it("sees gw.stop()", function()
    local p = testing.pipeline(timers, { env = { STOP_AT_3 = "1" } })
    p:advance("25s")
    assert.is_false(p:stopped())
    p:advance("5s")
    assert.is_true(p:stopped())
    p:close()
  end)

  it("runs :batch handlers when a poll ends", function()
    local p = testing.pipeline(batch)
    for i = 1, 3 do
      p:push("sock", { state = "LISTEN", src = "0.0.0.0", sport = 8000 + i, rqueue = i * 10 })
    end
    assert.are.equal(0, #p:sent()) -- the poll has not ended
    assert.are.equal(1, p:poll("sockets"))
    local frames = p:sent("listen.")
    assert.are.equal(1, #frames)
    assert.are.same({ listeners = 3, longest_queue = 30, size = 3 }, frames[1].record)
    p:poll() -- an empty poll is a poll: the handler hears of it
    frames = p:sent("listen.")
    assert.are.equal(2, #frames)
    assert.are.same({ listeners = 0, longest_queue = 0, size = 0 }, frames[2].record)
    assert.are.equal(2, p:stats().sockets[1].batches)
    p:close()
  end)

  it("forwards empty polls as empty batches, without errors", function()
    local path = tmpfile([[
local gw = require "nlgate"
local out = gw.unix { path = "fwd.sock" }
gw.sockets { every = "1s" }:batch(function(b) out:send("socks", b) end)
]])
    local p = testing.pipeline(path)
    for _ = 1, 120 do p:poll() end -- past the 100 failures that would disable it
    p:push("sock", { state = "LISTEN", src = "0.0.0.0", sport = 80 })
    p:poll()
    assert.are.same({}, p:errors())
    assert.are.equal(121, p:stats().sockets[1].batches)
    assert.are.equal(1, p:stats().unix[1].offered)
    p:close()
    os.remove(path)
  end)

  it("filters frames by output name", function()
    local path = tmpfile([[
local gw = require "nlgate"
local a = gw.unix { path = "a.sock" }
local t = gw.tcp { connect = "127.0.0.1:1" }
gw.every("1s", function() a:send("x.a", { n = 1 }); t:send("x.t", { n = 2 }) end)
]])
    local p = testing.pipeline(path)
    p:advance("1s")
    assert.are.same({ "x.a", "x.t" }, tags(p:sent("x.")))
    assert.are.same({ "x.t" }, tags(p:sent("", "tcp")))
    assert.are.same({ "x.a" }, tags(p:sent(nil, "unix")))
    p:close()
    os.remove(path)
  end)

  it("records an alert once per declared output, in the order declared", function()
    local path = tmpfile([[
local gw = require "nlgate"
local t = gw.tcp { connect = "127.0.0.1:1" }
local a = gw.unix "a.sock"
gw.every("1s", function() gw.alert { name = "x", key = "k", message = "m" } end)
]])
    local p = testing.pipeline(path, { clock = 50 })
    p:advance("1s")
    local frames = p:sent("alert.x")
    assert.are.equal(2, #frames)
    assert.are.same({ "tcp", "unix" }, { frames[1].output, frames[2].output })
    assert.are.same(frames[1].record, frames[2].record) -- encoded once
    assert.are.equal(51, frames[1].time)
    p:close()
    os.remove(path)
  end)

  it("gives a fake the source's extra methods, doing nothing, and a script-side poll", function()
    local path = tmpfile([[
local gw = require "nlgate"
local ct = gw.conntrack { events = "new,destroy" }
assert(ct:resync() == false)
local out = gw.unix "ct.sock"
local n = 0
ct:each(function(e) n = n + 1 end)
gw.every("1s", function() out:send("n", { n = n, polled = ct:poll() }) end)
]])
    local p = testing.pipeline(path)
    p:push("ct", { event = "new", orig_src = "10.0.0.1", orig_dst = "10.0.0.2" })
    p:push("conntrack", { event = "destroy" })
    p:advance("1s")
    assert.are.same({ n = 2, polled = 2 }, p:sent("n")[1].record)
    p:close()
    os.remove(path)
  end)

  it("raises top-level errors with the file's line", function()
    local syntax = tmpfile("local gw = require 'nlgate'\nlocal x = = 1\n")
    local raise = tmpfile("local gw = require 'nlgate'\n\nerror('boom')\n")
    local badopt = tmpfile("local gw = require 'nlgate'\nlocal s = gw.sockets { proto = 'tcpx' }\n")
    local unknown = tmpfile("local gw = require 'nlgate'\n\n\nlocal s = gw.sockets { prto = 'tcp' }\n")
    assert.error_matches(function() testing.pipeline(syntax) end, ":2: unexpected symbol")
    assert.error_matches(function() testing.pipeline(raise) end, ":3: boom$")
    assert.error_matches(function() testing.pipeline(badopt) end, ":2: gw.sockets: bad proto 'tcpx'")
    assert.error_matches(function() testing.pipeline(unknown) end,
      ":4: gw.sockets: unknown option 'prto'")
    for _, f in ipairs { syntax, raise, badopt, unknown } do os.remove(f) end
  end)

  it("keeps the sandbox of run", function()
    local path = tmpfile([[
local gw = require "nlgate"
assert(io.open == nil and os.execute == nil and debug == nil)
assert(not pcall(require, "nlgate.testing_core"))
]])
    testing.pipeline(path):close()
    os.remove(path)
  end)

  it("closes", function()
    local p = testing.pipeline(slow)
    p:close()
    assert.has_error(function() p:push("sock", {}) end, "the pipeline is closed")
    p:close() -- twice is fine
  end)
end)

describe("testing.record and testing.replay", function()
  it("builds a view from a table", function()
    local r = testing.record("sock", { state = "ESTAB", src = "192.0.2.1", sport = 22, rtt_us = 1500 })
    assert.are.equal("ESTAB", r.state)
    assert.are.equal("inet", r.family) -- from the address
    assert.are.equal(1500, r.rtt_us)
    assert.are.equal(nil, r.cong)
    assert.has_error(function() testing.record("sock", { nope = 1 }) end)
    assert.has_error(function() testing.record("nosuchkind", {}) end)
  end)

  it("reads a recorded dump", function()
    local recs = testing.replay("tests/fixtures/sock_tcp4.bin")
    local listen, estab = 0, 0
    for _, r in ipairs(recs) do
      assert.are.equal("tcp", r.proto)
      assert.are.equal("inet", r.family)
      if r.state == "LISTEN" and r.sport == 47001 then listen = listen + 1 end
      if r.state == "ESTAB" and r.rtt_us and r.rtt_us > 0 then estab = estab + 1 end
    end
    assert.are.equal(1, listen)
    assert.is_true(estab >= 4)
    local udp = testing.replay("tests/fixtures/sock_udp6.bin", "udp")
    assert.are.equal("udp", udp[1].proto)
    -- pushed into a pipeline like any record
    local p = testing.pipeline(slow, { env = { MAX_RTT_MS = "0" } })
    for _, r in ipairs(recs) do p:push("sock", r) end
    assert.are.equal(estab, #p:sent("alert.slow"))
    p:close()
  end)
end)

describe("testing.replay of a capture file", function()
  it("gives its packets as pkt records, through a tcpdump filter", function()
    local pkts = testing.replay("tests/fixtures/capture.pcap")
    assert.are.equal(24, #pkts) -- as gw.packets{file} reads it (packets_spec)
    local bytes = 0
    for _, p in ipairs(pkts) do bytes = bytes + p.wire_len end
    assert.are.equal(940 + 204 + 3110 + 168 + 82 + 2132 + 132 + 42, bytes)
    local dns = testing.replay("tests/fixtures/capture.pcap", "udp port 53")
    assert.are.equal(2, #dns)
    assert.are.equal("10.0.0.1", dns[1].src)
    assert.are.equal(53, dns[1].dport)
    assert.are.equal(82, dns[1].wire_len)
    assert.are.equal(53, dns[2].sport)
    assert.are.equal(122, dns[2].wire_len)
    assert.is_true(dns[2].time_ns > dns[1].time_ns)
    local ok, e = pcall(testing.replay, "tests/fixtures/capture.pcap", "udp port")
    assert.is_false(ok)
    assert.truthy(tostring(e):find("udp port", 1, true))
    ok, e = pcall(testing.replay, "/nonexistent/x.pcap")
    assert.is_false(ok)
    assert.truthy(tostring(e):find("/nonexistent/x.pcap", 1, true))
  end)
end)

describe("the pipeline files", function()
  local nlgate = os.getenv("NLGATE")
  it("pass nlgate check", function()
    if not nlgate then pending("NLGATE not set") return end
    for _, f in ipairs { slow, timers, batch } do
      local ok = os.execute(string.format("%s check %s >/dev/null", nlgate, f))
      assert.is_true(ok, f)
    end
  end)
end)
