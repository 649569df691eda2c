-- gw.alert and gw.threshold (bindings/lua_alert.c): options, de-duplication
-- per (name, key), the threshold state machine and its records in module
-- mode (nlgate.so in busted's interpreter: the gateway clock is the real
-- one, so only windows of an hour are used there, never elapsed time); the
-- frames and log lines an alert makes under `nlgate run`; and on testing
-- pipelines (tests/spec/pipelines/alert_*.lua), where the virtual clock
-- drives `every`, `for` and `expire` and the outputs record every frame.
local gw = require "nlgate"

-- The counters of gw.stats().alerts since `before`.
local function alert_delta(before)
  local now = gw.stats().alerts
  return {
    sent = now.sent - before.sent,
    suppressed = now.suppressed - before.suppressed,
    resolved = now.resolved - before.resolved,
    keys = now.keys - before.keys,
  }
end

-- A threshold whose hooks keep what they were given.
local function recorded(opts)
  local seen = { fired = {}, cleared = {} }
  opts.on_fire = function(key, value, rec) seen.fired[#seen.fired + 1] = { key = key, value = value, rec = rec } end
  opts.on_clear = function(key, value, rec) seen.cleared[#seen.cleared + 1] = { key = key, value = value, rec = rec } end
  return gw.threshold(opts), seen
end

describe("gw.alert", function()
  it("sends once per (name, key) within every, and counts the suppressed", function()
    local before = gw.stats().alerts
    assert.is_true(gw.alert { name = "spec.dedup", key = "k1", message = "one", every = "1h" })
    assert.is_false(gw.alert { name = "spec.dedup", key = "k1", message = "two", every = "1h" })
    assert.is_false(gw.alert { name = "spec.dedup", key = "k1", message = "three", every = "1h" })
    -- another key, another name: their own pairs
    assert.is_true(gw.alert { name = "spec.dedup", key = "k2", every = "1h" })
    assert.is_true(gw.alert { name = "spec.dedup2", key = "k1", every = "1h" })
    local d = alert_delta(before)
    assert.are.equal(3, d.sent)
    assert.are.equal(2, d.suppressed)
    assert.are.equal(3, d.keys)
  end)

  it("keeps one alert table when the module is opened again", function()
    assert.is_true(gw.alert { name = "spec.reopen", key = "k", every = "1h" })
    package.loaded.nlgate = nil
    local again = require "nlgate"
    assert.is_false(again.alert { name = "spec.reopen", key = "k", every = "1h" })
    assert.is_table(again.stats().alerts)
    assert.is_number(again.stats().alerts.sent)
  end)

  it("sends every call with every = 0", function()
    local before = gw.stats().alerts
    for _ = 1, 3 do assert.is_true(gw.alert { name = "spec.nolimit", key = 7, every = 0 }) end
    assert.are.equal(3, alert_delta(before).sent)
  end)

  it("raises on bad options, naming the option", function()
    local function err(opts)
      local ok, e = pcall(gw.alert, opts)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.truthy(err {}:find("gw.alert: name is required", 1, true))
    assert.truthy(err { name = "has space" }:find("bad name 'has space'", 1, true))
    assert.truthy(err { name = ("x"):rep(65) }:find("bad name", 1, true))
    assert.truthy(err { name = "a", severity = "loud" }:find("bad severity 'loud'", 1, true))
    assert.truthy(err { name = "a", every = "soon" }:find("bad every 'soon'", 1, true))
    assert.truthy(err { name = "a", every = -1 }:find("bad every", 1, true))
    assert.truthy(err { name = "a", fields = 3 }:find("fields must be a table", 1, true))
    assert.truthy(err { name = "a", fields = { state = "x" } }:find("'state' is the alert's own field", 1, true))
    assert.truthy(err { name = "a", fields = { t = {} } }:find("fields.t must be", 1, true))
    assert.truthy(err { name = "a", key = {} }:find("a key is a string, number or boolean", 1, true))
    assert.truthy(err { name = "a", message = {} }:find("message must be a string", 1, true))
    assert.truthy(err { name = "a", sevrity = "info" }:find("unknown option 'sevrity'", 1, true))
  end)
end)

describe("gw.threshold", function()
  it("fires once, stays firing in the hysteresis band, clears once", function()
    local t, seen = recorded { name = "spec.rtt", above = 200, clear = 150, every = "1h", severity = "error" }
    local before = gw.stats().alerts
    assert.are.equal("ok", t:update("a", 100))
    assert.are.equal("firing", t:update("a", 250, { host = "web1" }))
    assert.are.equal("firing", t:update("a", 260))
    assert.are.equal("firing", t:update("a", 180)) -- between clear and above: nothing
    assert.are.equal("firing", t:update("a", 150)) -- clear is "below 150"
    assert.are.equal("firing", t:update("a", 210))
    assert.are.equal("ok", t:update("a", 140, { host = "web1" }))
    assert.are.equal("ok", t:update("a", 120))
    assert.are.equal("ok", t:state("a"))
    assert.are.equal(1, #seen.fired)
    assert.are.equal(1, #seen.cleared)

    local f = seen.fired[1]
    assert.are.equal("a", f.key)
    assert.are.equal(250, f.value)
    assert.are.same({ "spec.rtt", "error", "a", "firing", 250, 200, "web1", 0 },
      { f.rec.name, f.rec.severity, f.rec.key, f.rec.state, f.rec.value, f.rec.threshold, f.rec.host, f.rec.suppressed })
    assert.is_number(f.rec.since)
    assert.truthy(f.rec.message:find("250", 1, true))

    local c = seen.cleared[1]
    assert.are.equal(140, c.value)
    assert.are.equal("resolved", c.rec.state)
    assert.are.equal("a", c.rec.key)
    assert.are.equal("web1", c.rec.host)
    assert.is_true(c.rec.duration >= 0)
    assert.is_nil(c.rec.reason)

    local d = alert_delta(before)
    assert.are.equal(1, d.sent)
    assert.are.equal(1, d.resolved)
  end)

  it("keeps keys independent", function()
    local t, seen = recorded { name = "spec.keys", above = 10, every = "1h" }
    assert.are.equal("firing", t:update("x", 11))
    assert.are.equal("ok", t:update("y", 5))
    assert.are.equal("firing", t:update(42, 12))
    assert.are.equal("firing", t:state("x"))
    assert.are.equal("ok", t:state("y"))
    assert.are.equal("firing", t:state(42))
    local keys = t:firing()
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    assert.are.same({ 42, "x" }, keys)
    assert.are.equal("ok", t:update("x", 1)) -- clear defaults to the threshold
    assert.are.equal("firing", t:state(42))
    assert.are.same({ 42 }, t:firing())
    assert.are.equal(2, #seen.fired)
    assert.are.equal(1, #seen.cleared)
    local st = t:stats()
    assert.are.same({ 1, 0, 1, 2, 1 }, { st.keys, st.pending, st.firing, st.fired, st.resolved })
  end)

  it("does not fire before `for` has held, and a breach that stops starts over", function()
    local t, seen = recorded { name = "spec.hold", below = 5, clear = 8, ["for"] = "1h" }
    assert.are.equal("pending", t:update("k", 4))
    assert.are.equal("pending", t:update("k", 1))
    assert.are.equal("pending", t:state("k"))
    assert.are.equal("ok", t:update("k", 6)) -- not below 5: the condition stopped
    assert.are.equal("ok", t:state("k"))
    assert.are.equal("pending", t:update("k", 3))
    assert.are.equal(0, #seen.fired)
    assert.are.same({}, t:firing())
    local t2 = gw.threshold { name = "spec.hold2", above = 1, hold = 3600 }
    assert.are.equal("pending", t2:update("k", 2))
  end)

  it("rate-limits a key that fires again within every, and its resolution with it", function()
    local t, seen = recorded { name = "spec.flap", above = 10, every = "1h" }
    local before = gw.stats().alerts
    t:update("k", 20); t:update("k", 0) -- fired and resolved: both sent
    t:update("k", 20); t:update("k", 0) -- again within the hour: both suppressed
    assert.are.equal(2, #seen.fired) -- the hooks see every transition
    assert.are.equal(2, #seen.cleared)
    local d = alert_delta(before)
    assert.are.equal(1, d.sent)
    assert.are.equal(1, d.resolved)
    assert.are.equal(2, d.suppressed)
  end)

  it("bounds its keys: past max_keys new keys are refused and counted", function()
    local t = gw.threshold { name = "spec.max", above = 0, max_keys = 2, ["for"] = "1h" }
    assert.are.equal("pending", t:update("a", 1))
    assert.are.equal("pending", t:update("b", 1))
    assert.are.equal("ok", t:update("c", 1))
    assert.are.equal("ok", t:update("d", 0)) -- not breaching: never held
    assert.are.equal(1, t:stats().dropped_keys)
    assert.are.equal(2, t:stats().keys)
    assert.are.equal("ok", t:update("a", -1)) -- back to ok: the key is forgotten
    assert.are.equal("pending", t:update("c", 1))
    assert.are.equal(2, t:stats().keys)
  end)

  it("reads a multi-field key from a table, and hands it back as given", function()
    local t, seen = recorded { name = "spec.by", above = 1, by = { "dst", "dport" } }
    t:update({ dst = "10.0.0.2", dport = 443 }, 5)
    assert.are.equal("firing", t:state { dst = "10.0.0.2", dport = 443 })
    assert.are.equal("firing", t:state "10.0.0.2,443")
    assert.are.equal("10.0.0.2,443", seen.fired[1].rec.key)
    assert.are.equal("10.0.0.2", seen.fired[1].rec.dst)
    assert.are.equal(443, seen.fired[1].rec.dport)
  end)

  it("counts a raising hook and keeps its state", function()
    local before = gw.stats().script.errors
    local t = gw.threshold { name = "spec.hookerr", above = 1, on_fire = function() error("boom") end }
    assert.are.equal("firing", t:update("k", 2))
    assert.are.equal("firing", t:state("k"))
    assert.are.equal(before + 1, gw.stats().script.errors)
  end)

  it("reports each threshold in gw.stats().thresholds", function()
    gw.threshold { name = "spec.listed", above = 1 }
    local found
    for _, st in ipairs(gw.stats().thresholds) do
      if st.name == "spec.listed" then found = st end
    end
    assert.is_table(found)
    assert.are.equal(0, found.keys)
  end)

  it("raises on bad options, naming the option", function()
    local function err(opts)
      local ok, e = pcall(gw.threshold, opts)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.truthy(err { above = 1 }:find("gw.threshold: name is required", 1, true))
    assert.truthy(err { name = "t" }:find("give one of above or below", 1, true))
    assert.truthy(err { name = "t", above = 1, below = 0 }:find("give one of above or below", 1, true))
    assert.truthy(err { name = "t", above = "high" }:find("above must be a number", 1, true))
    assert.truthy(err { name = "t", above = 10, clear = 20 }:find("clear (20.0) must be at most above", 1, true))
    assert.truthy(err { name = "t", below = 10, clear = 5 }:find("clear (5.0) must be at least below", 1, true))
    assert.truthy(err { name = "t", above = 1, ["for"] = "soon" }:find("bad for 'soon'", 1, true))
    assert.truthy(err { name = "t", above = 1, hold = "1s", ["for"] = "1s" }:find("for or hold", 1, true))
    assert.truthy(err { name = "t", above = 1, every = "x" }:find("bad every 'x'", 1, true))
    assert.truthy(err { name = "t", above = 1, expire = "x" }:find("bad expire 'x'", 1, true))
    assert.truthy(err { name = "t", above = 1, max_keys = 0 }:find("bad max_keys '0' (an integer, at least 1)", 1, true))
    assert.truthy(err { name = "t", above = 1, by = 3 }:find("by must be", 1, true))
    assert.truthy(err { name = "t", above = 1, on_fire = "x" }:find("on_fire must be a function", 1, true))
    assert.truthy(err { name = "t", above = 1, severity = "meh" }:find("bad severity 'meh'", 1, true))
    assert.truthy(err { name = "t", above = 1, abve = 2 }:find("unknown option 'abve'", 1, true))
    assert.truthy(err { name = "t", above = 1, expire = 0 }:find("expire must be at least 1ms", 1, true))
    assert.truthy(err { name = "bad name", above = 1 }:find("bad name 'bad name'", 1, true))
    local t = gw.threshold { name = "t", above = 1 }
    assert.has_error(function() t:update("k", "high") end)
    assert.has_error(function() t:update({}, 2) end) -- a table key needs `by`
    local ok, e = pcall(t.update, t, "k", 2, { key = 1 })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("'key' is the alert's own field", 1, true))
  end)
end)

-- Under `nlgate run`: the log line, the frame on a feed, and an alert with
-- no output at all.
describe("alerts under nlgate run", function()
  local dir
  setup(function()
    dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function run(script)
    local path = dir .. "/pipeline.lua"
    local f = assert(io.open(path, "w")); f:write(script); f:close()
    local p = io.popen(string.format("timeout 20 %s run %s 2>&1", os.getenv("NLGATE"), path))
    local out = p:read("a")
    p:close()
    return out
  end

  it("logs and counts an alert with no output declared", function()
    local out = run [[
      local gw = require "nlgate"
      gw.after(0, function()
        gw.alert { name = "disk.full", severity = "critical", key = "/var", message = "95% used" }
        gw.alert { name = "disk.full", severity = "critical", key = "/var", message = "96% used" }
        local st = gw.stats().alerts
        gw.log("counted", st.sent, st.suppressed, st.keys)
        gw.stop()
      end)
    ]]
    assert.truthy(out:find("alert disk.full [critical] /var: 95% used", 1, true))
    assert.falsy(out:find("96% used", 1, true))
    assert.truthy(out:find("counted 1 1 1", 1, true))
  end)

  it("sends the alert's frame to the feed, fields and all", function()
    local sock, tail = dir .. "/feed.sock", dir .. "/tail.out"
    local path = dir .. "/feed.lua"
    local f = assert(io.open(path, "w"))
    f:write(string.format([[
      local gw = require "nlgate"
      local feed = gw.unix { path = %q }
      local t = gw.threshold { name = "spec.feed", above = 200, clear = 150, by = "dst" }
      local timer, tries = nil, 0
      timer = gw.every("20ms", function()
        tries = tries + 1
        if feed:stats().clients == 0 and tries < 500 then return end
        timer:cancel()
        gw.alert { name = "spec.feed", key = "k", message = "hello", fields = { n = 3, up = true } }
        t:update({ dst = "10.0.0.9" }, 250, { port = 443 })
        t:update({ dst = "10.0.0.9" }, 100)
        gw.after("300ms", gw.stop)
      end)
    ]], sock))
    f:close()
    local nlgate = os.getenv("NLGATE")
    local p = io.popen(string.format("timeout 20 %s run %s 2>&1", nlgate, path))
    for _ = 1, 200 do
      if os.execute("test -S " .. sock) then break end
      os.execute("sleep 0.05")
    end
    os.execute(string.format("timeout 15 %s tail -n 3 %s > %s 2>&1", nlgate, sock, tail))
    local out = p:read("a")
    p:close()
    local text = io.open(tail):read("a")
    assert.truthy(out:find("alert spec.feed [warning] k: hello", 1, true))
    assert.truthy(out:find("alert spec.feed [resolved] 10.0.0.9: value 100 back below 150", 1, true))
    assert.truthy(text:find('"tag":"alert.spec.feed"', 1, true))
    assert.truthy(text:find('"n":3', 1, true))
    assert.truthy(text:find('"up":true', 1, true))
    assert.truthy(text:find('"suppressed":0', 1, true))
    assert.truthy(text:find('"state":"firing"', 1, true))
    assert.truthy(text:find('"state":"resolved"', 1, true))
    assert.truthy(text:find('"dst":"10.0.0.9"', 1, true))
    assert.truthy(text:find('"port":443', 1, true))
    assert.truthy(text:find('"threshold":200', 1, true))
  end)
end)

-- On a testing pipeline (nlgate.testing): a dry runtime whose outputs record
-- frames and whose clock only moves when the test advances it.
local testing = require "nlgate.testing"

local function sock(t)
  local r = { state = "ESTAB", src = "10.0.0.1", sport = 5000, dst = "10.0.0.2", dport = 443 }
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

describe("alerts on a testing pipeline", function()
  it("goes to every output, once per key within every, carrying the suppressed count", function()
    local p = testing.pipeline("tests/spec/pipelines/alert_rate.lua", { clock = 1000 })
    p:push("sock", sock { total_retrans = 12 })
    p:push("sock", sock { total_retrans = 13 }) -- same key within 1m: suppressed
    p:push("sock", sock { total_retrans = 14 })
    p:push("sock", sock { dst = "10.0.0.3", total_retrans = 20 }) -- its own key
    local frames = p:sent("alert.")
    assert.are.equal(4, #frames) -- two alerts, each to both outputs
    local outputs = {}
    for _, f in ipairs(frames) do
      assert.are.equal("alert.retrans", f.tag)
      assert.are.equal(1000, f.time)
      outputs[f.output] = (outputs[f.output] or 0) + 1
    end
    assert.are.same({ unix = 4 }, outputs)
    local r = frames[1].record
    assert.are.same({ "retrans", "error", "10.0.0.2", "10.0.0.2 retransmits", "firing", 12, 443, 0 },
      { r.name, r.severity, r.key, r.message, r.state, r.retrans, r.dport, r.suppressed })
    assert.are.equal(frames[1].record.key, frames[2].record.key) -- encoded once, sent twice
    assert.are.equal("10.0.0.3", frames[3].record.key)

    p:clear()
    p:advance("59.999s")
    p:push("sock", sock { total_retrans = 15 })
    assert.are.equal(0, #p:sent("alert."))
    p:advance("0.001s") -- 1m after the first frame
    p:push("sock", sock { total_retrans = 16 })
    frames = p:sent("alert.")
    assert.are.equal(2, #frames)
    assert.are.equal(16, frames[1].record.retrans)
    assert.are.equal(3, frames[1].record.suppressed)
    assert.are.equal(1060, frames[1].time)
    local st = p:stats().alerts
    -- 10.0.0.3's pair, idle for 1m, was forgotten at that last alert
    assert.are.same({ 3, 3, 0, 1 }, { st.sent, st.suppressed, st.resolved, st.keys })
    p:close()
  end)

  it("forgets a key idle past every", function()
    local p = testing.pipeline("tests/spec/pipelines/alert_rate.lua", { clock = 0, env = { EVERY = "10s" } })
    p:push("sock", sock { total_retrans = 11 })
    p:push("sock", sock { dst = "10.0.0.3", total_retrans = 11 })
    assert.are.equal(2, p:stats().alerts.keys)
    p:advance("10s")
    p:push("sock", sock { dst = "10.0.0.4", total_retrans = 11 })
    assert.are.equal(1, p:stats().alerts.keys) -- the two idle ones went
    p:close()
  end)

  it("remembers at most 10,000 pairs: past them the oldest is forgotten early, counted", function()
    local p = testing.pipeline("tests/spec/pipelines/alert_many.lua", { clock = 0, env = { N = "10002" } })
    local st = p:stats().alerts
    assert.are.same({ 10002, 10000, 2 }, { st.sent, st.keys, st.dropped_keys })
    assert.are.equal(10002, #p:sent("alert.many"))
    p:close()
  end)

  it("makes room among expired pairs behind one with a long every", function()
    local p = testing.pipeline("tests/spec/pipelines/alert_many.lua", { clock = 0, env = { MODE = "sweep" } })
    assert.are.equal(10000, p:stats().alerts.keys)
    p:advance("60s")
    local st = p:stats().alerts
    assert.are.same({ 10001, 2, 0 }, { st.sent, st.keys, st.dropped_keys }) -- "old" and "new" stay
    local frames = p:sent("alert.many")
    assert.are.equal("new", frames[#frames].record.key)
    p:close()
  end)

  it("counts an alert from a script with no output", function()
    local p = testing.pipeline("tests/spec/pipelines/alert_quiet.lua", { clock = 0 })
    assert.are.equal(0, #p:sent())
    assert.are.equal(1, p:stats().alerts.sent)
    p:close()
  end)
end)

describe("thresholds on a testing pipeline", function()
  local P = "tests/spec/pipelines/alert_threshold.lua"

  it("fires once `for` has held between updates, clears once after `for` under clear", function()
    local p = testing.pipeline(P, { clock = 100 })
    p:push("sock", sock { rtt_us = 250000 }) -- 100: pending
    p:advance("29s")
    p:push("sock", sock { rtt_us = 300000 }) -- 129: not yet 30 s
    assert.are.equal(0, #p:sent("alert."))
    p:advance("1s")
    p:push("sock", sock { rtt_us = 210000, sport = 5001 }) -- 130: fires
    local frames = p:sent("alert.")
    assert.are.equal(1, #frames)
    local r = frames[1].record
    assert.are.same({ "slow_rtt", "firing", "error", "10.0.0.2", "10.0.0.2", 210000, 200000, 100, 5001, 0 },
      { r.name, r.state, r.severity, r.key, r.dst, r.value, r.threshold, r.since, r.sport, r.suppressed })
    p:advance("10s")
    p:push("sock", sock { rtt_us = 400000 })
    p:push("sock", sock { rtt_us = 160000 }) -- in the band: still firing
    p:push("sock", sock { rtt_us = 140000 }) -- 140: under clear, clearing
    p:advance("29s")
    p:push("sock", sock { rtt_us = 100000 }) -- 169: not yet 30 s under clear
    p:advance("1s")
    p:push("sock", sock { rtt_us = 100000 }) -- 170: resolves
    p:advance("1s")
    p:push("sock", sock { rtt_us = 100000 })
    frames = p:sent("alert.")
    assert.are.equal(2, #frames)
    r = frames[2].record
    assert.are.same({ "resolved", "10.0.0.2", 100000, 130, 40 },
      { r.state, r.key, r.value, r.since, r.duration })
    assert.is_nil(r.reason)
    assert.are.same({ 1, 1 }, { p:stats().thresholds[1].fired, p:stats().thresholds[1].resolved })
    p:close()
  end)

  it("starts `for` over when the condition stops, and a value in the band stops it", function()
    local p = testing.pipeline(P, { clock = 0 })
    p:push("sock", sock { rtt_us = 250000 }) -- 0: pending
    p:advance("20s")
    p:push("sock", sock { rtt_us = 180000 }) -- 20: not above: back to ok
    p:advance("10s")
    p:push("sock", sock { rtt_us = 250000 }) -- 30: pending again, from 30
    p:advance("20s")
    p:push("sock", sock { rtt_us = 250000 }) -- 50: 20 s only
    assert.are.equal(0, #p:sent("alert."))
    assert.are.equal(1, p:stats().thresholds[1].pending)
    p:advance("10s")
    p:push("sock", sock { rtt_us = 250000 }) -- 60: 30 s held
    assert.are.equal(1, #p:sent("alert."))
    p:close()
  end)

  it("keeps keys apart, each read from the record in C", function()
    local p = testing.pipeline(P, { clock = 0, env = { FOR = "0s" } })
    p:push("sock", sock { rtt_us = 250000 })
    p:push("sock", sock { dst = "10.0.0.3", rtt_us = 100000 })
    p:push("sock", sock { dst = "10.0.0.4", rtt_us = 300000 })
    p:push("sock", sock { rtt_us = 100000 }) -- 10.0.0.2 resolves; .4 fires on
    local frames = p:sent("alert.")
    local seen = {}
    for _, f in ipairs(frames) do seen[#seen + 1] = f.record.key .. " " .. f.record.state end
    assert.are.same({ "10.0.0.2 firing", "10.0.0.4 firing", "10.0.0.2 resolved" }, seen)
    local st = p:stats().thresholds[1]
    assert.are.same({ 1, 1, 2, 1 }, { st.keys, st.firing, st.fired, st.resolved })
    assert.are.same({}, p:errors())
    p:close()
  end)

  it("resolves a firing key that stopped updating once expire has passed, and says so", function()
    local p = testing.pipeline(P, { clock = 0, env = { FOR = "0s" } })
    p:push("sock", sock { rtt_us = 250000 }) -- 0: fires
    p:push("sock", sock { dst = "10.0.0.3", rtt_us = 250000 })
    p:advance("4m")
    p:push("sock", sock { dst = "10.0.0.3", rtt_us = 250000 }) -- keeps .3 fresh
    p:advance("59s") -- 299 s: nothing expired yet
    assert.are.equal(2, #p:sent("alert."))
    p:advance("1s") -- 300 s: .2 had no update for 5m
    local frames = p:sent("alert.")
    assert.are.equal(3, #frames)
    local r = frames[3].record
    assert.are.same({ "resolved", "10.0.0.2", "expired", 300, 250000 },
      { r.state, r.key, r.reason, r.duration, r.value })
    p:advance("239s") -- 539 s: .3's last update was at 240
    assert.are.equal(3, #p:sent("alert."))
    p:advance("1s")
    frames = p:sent("alert.")
    assert.are.equal(4, #frames)
    assert.are.equal("10.0.0.3", frames[4].record.key)
    assert.are.equal(0, p:stats().thresholds[1].keys)
    assert.are.equal(2, p:stats().thresholds[1].expired)
    p:close()
  end)

  it("alerts once for a key flapping within every, and says how many it held back", function()
    local p = testing.pipeline(P, { clock = 0, env = { FOR = "0s" } })
    p:push("sock", sock { rtt_us = 250000 }) -- 0: fires, sent
    p:advance("1s")
    p:push("sock", sock { rtt_us = 100000 }) -- 1: resolves, sent
    p:advance("1s")
    p:push("sock", sock { rtt_us = 250000 }) -- 2: fires within 10m: suppressed
    p:advance("1s")
    p:push("sock", sock { rtt_us = 100000 }) -- 3: its resolution too
    assert.are.equal(2, #p:sent("alert."))
    p:advance("597s")
    p:push("sock", sock { rtt_us = 250000 }) -- 600: 10m after the first frame
    local frames = p:sent("alert.")
    assert.are.equal(3, #frames)
    assert.are.same({ "firing", 2 }, { frames[3].record.state, frames[3].record.suppressed })
    local st = p:stats().thresholds[1]
    assert.are.same({ 3, 2 }, { st.fired, st.resolved }) -- every transition counted
    p:close()
  end)

  it("keeps a firing key whose updates stopped when there is no expire", function()
    local p = testing.pipeline(P, { clock = 0, env = { FOR = "0s", EXPIRE = "off" } })
    p:push("sock", sock { rtt_us = 250000 })
    p:advance("1h")
    assert.are.equal(1, #p:sent("alert."))
    assert.are.equal(1, p:stats().thresholds[1].firing)
    p:push("sock", sock { rtt_us = 250000 }) -- still the same episode
    assert.are.equal(1, #p:sent("alert."))
    p:close()
  end)

  it("takes a record view as the key with `by`, and raises naming a missing field", function()
    local t, seen = recorded { name = "spec.view", above = 100, by = { "dst", "dport" } }
    assert.are.equal("firing", t:update(testing.record("sock", sock { rtt_us = 1 }), 200))
    assert.are.equal("firing", t:state(testing.record("sock", sock())))
    assert.are.equal("firing", t:state("10.0.0.2,443"))
    assert.are.equal("ok", t:state(testing.record("sock", sock { dport = 80 })))
    assert.are.same({ dst = "10.0.0.2", dport = 443 }, t:firing()[1])
    assert.are.equal("10.0.0.2", seen.fired[1].rec.dst)
    local bad = gw.threshold { name = "spec.view2", above = 1, by = "nope" }
    local ok, e = pcall(bad.update, bad, testing.record("sock", sock()), 2)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("sock record has no field 'nope'", 1, true))
    local nob = gw.threshold { name = "spec.view3", above = 1 }
    assert.has_error(function() nob:update(testing.record("sock", sock()), 2) end)
  end)
end)
