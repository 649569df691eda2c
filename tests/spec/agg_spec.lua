-- The aggregators (bindings/lua_agg.c, lua_agg_kinds.c) through nlgate.so:
-- plain keys and keys read from record views, max_keys, gw.rate's wrap and
-- reset, the sketches' bounds, merges, options; windows (tumbling, sliding,
-- empty) and EWMA decay on the virtual clock of nlgate.testing pipelines
-- (tests/spec/pipelines/agg_windows.lua); the clock going back in module
-- mode.
local gw = require "nlgate"
local testing = require "nlgate.testing"

local function sock(t)
  local r = { state = "ESTAB", src = "10.0.0.1", sport = 5000, dst = "10.0.0.2", dport = 443 }
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

describe("gw.counter", function()
  it("counts and sums plain keys", function()
    local c = gw.counter {}
    c:add("a")
    c:add("a", 2)
    c:add(2)
    c:add(2.0, 0.5) -- 2 and 2.0 are one key, as in a Lua table
    c:add(true)
    assert.are.equal(3, c:get("a"))
    assert.are.equal(1.5, c:get(2))
    assert.are.equal(1, c:get(true))
    assert.are.equal(0, c:get("b"))
    assert.are.equal(3, c:size())
    local seen = {}
    for k, v in c:pairs() do seen[k] = v end
    assert.are.same({ a = 3, [2] = 1.5, [true] = 1 }, seen)
    local top = c:top(2)
    assert.are.same({ { key = "a", value = 3 }, { key = 2, value = 1.5 } }, top)
    assert.is_true(c:rate("a") > 0)
    c:reset()
    assert.are.equal(0, c:size())
    assert.are.equal(0, c:get("a"))
    assert.has_error(function() c:add({}) end)
    assert.has_error(function() c:add(0 / 0) end)
  end)

  it("refuses keys past max_keys and counts them", function()
    local c = gw.counter { max_keys = 3 }
    for i = 1, 5 do c:add("k" .. i) end
    c:add("k1", 10) -- a known key still counts
    assert.are.equal(3, c:size())
    assert.are.equal(11, c:get("k1"))
    assert.are.equal(0, c:get("k5"))
    local st = c:stats()
    assert.are.equal(2, st.dropped_keys)
    assert.are.equal(3, st.keys)
    assert.are.equal(3, st.max_keys)
    assert.is_true(st.bytes > 0)
  end)

  it("reads keys from record views, in C", function()
    local c = gw.counter { by = "dst" }
    c:add(testing.record("sock", sock()))
    c:add(testing.record("sock", sock { sport = 5001 }), 2)
    c:add(testing.record("sock", sock { dst = "2001:db8::1" }))
    assert.are.equal(3, c:get("10.0.0.2"))
    assert.are.equal(1, c:get("2001:db8::1"))
    assert.are.equal(3, c:get(testing.record("sock", sock())))
    assert.are.equal(0, c:get("10.9.9.9"))
    local keys = {}
    for k, v in c:pairs() do keys[k] = v end
    assert.are.same({ ["10.0.0.2"] = 3, ["2001:db8::1"] = 1 }, keys)
    -- once a view set the layout, a value for the field is a key too
    c:add("10.0.0.2")
    assert.are.equal(4, c:get("10.0.0.2"))
    assert.has_error(function() c:add(42) end)
  end)

  it("keys several fields as a table, and an absent field as absent", function()
    local c = gw.counter { by = { "dst", "dport", "rtt_us" } }
    c:add(testing.record("sock", sock { rtt_us = 250 }))
    c:add(testing.record("sock", sock { rtt_us = 250 }))
    c:add(testing.record("sock", sock())) -- no tcp_info: rtt_us absent
    local top = c:top(5)
    assert.are.same({ dst = "10.0.0.2", dport = 443, rtt_us = 250 }, top[1].key)
    assert.are.equal(2, top[1].value)
    assert.are.same({ dst = "10.0.0.2", dport = 443 }, top[2].key)
    assert.are.equal(2, c:get { dst = "10.0.0.2", dport = 443, rtt_us = 250 })
    assert.are.equal(1, c:get { dst = "10.0.0.2", dport = 443 })
    assert.has_error(function() gw.counter({ by = "nope" }):add(testing.record("sock", sock())) end,
                     "gw.counter: sock records have no field 'nope' (see `nlgate fields sock`)")
    -- one absent field: the key is nil, which pairs gives as false
    local one = gw.counter { by = "rtt_us" }
    one:add(testing.record("sock", sock()))
    for k, v in one:pairs() do
      assert.is_false(k)
      assert.are.equal(1, v)
    end
    assert.is_nil(one:top(1)[1].key)
  end)

  it("checks its options", function()
    assert.has_error(function() gw.counter { windw = "1m" } end, "gw.counter: unknown option 'windw'")
    assert.has_error(function() gw.counter { window = "1m", slide = "7s" } end)
    assert.has_error(function() gw.counter { slide = "1m" } end, "gw.counter: slide needs a window")
    assert.has_error(function() gw.counter { on_close = print } end, "gw.counter: on_close needs a window")
    assert.has_error(function() gw.counter { by = 3 } end)
    assert.has_error(function() gw.counter { of = "x" } end, "gw.counter: unknown option 'of'")
    assert.has_error(function() gw.rate { bits = 16 } end)
    assert.has_error(function() gw.rate { window = "1m" } end, "gw.rate: unknown option 'window'")
    assert.has_error(function() gw.quantiles { accuracy = 2 } end)
    assert.has_error(function() gw.distinct { precision = 30 } end)
    assert.has_error(function() gw.counter {}.add(gw.topk {}, "x") end)
  end)
end)

describe("gw.rate", function()
  it("takes a 32-bit counter's wrap", function()
    local r = gw.rate { bits = 32 }
    local d, ps = r:update("eth0", 4294967290)
    assert.is_nil(d)
    assert.is_nil(ps)
    d = r:update("eth0", 5)
    assert.are.equal(11, d)
    d = r:update("eth0", 25)
    assert.are.equal(20, d)
    assert.has_error(function() r:update("eth0", 4294967296) end)
  end)

  it("takes a 64-bit counter going down as a reset", function()
    local r = gw.rate {}
    assert.is_nil(r:update("x", 1000))
    assert.are.equal(500, (r:update("x", 1500)))
    assert.are.equal(40, (r:update("x", 40)))
    local d, ps = r:update("x", 100)
    assert.are.equal(60, d)
    assert.is_true(ps == nil or ps > 0)
    assert.are.equal(1, r:size())
  end)
end)

describe("gw.topk", function()
  it("lists heavy hitters with their error", function()
    local t = gw.topk { k = 2 }
    for i = 1, 100 do
      t:add("big", 3)
      t:add("mid")
      t:add("noise" .. i) -- 100 keys through 8 counters
    end
    local top = t:top()
    assert.are.equal(2, #top)
    assert.are.equal("big", top[1].key)
    assert.are.equal("mid", top[2].key)
    assert.is_true(top[1].value >= 300 and top[1].value - top[1].error <= 300)
    assert.is_true(top[2].value >= 100 and top[2].value - top[2].error <= 100)
    assert.are.equal(1, #t:top(1))
    assert.has_error(function() t:add("x", 0) end)
  end)
end)

describe("gw.distinct", function()
  it("counts distinct items per key within its bound, and merges", function()
    local a, b = gw.distinct {}, gw.distinct {}
    for i = 1, 3000 do
      a:add("k", i)
      if i > 1000 then b:add("k", "x") end
      if i > 2000 then b:add("k", i + 1000) end -- 3001..4000
      a:add("k", i) -- again: no change
    end
    local err = 3 * 1.04 / math.sqrt(2 ^ 14)
    assert.is_true(math.abs(a:count("k") - 3000) <= err * 3000)
    assert.are.equal(0, a:count("nothing"))
    a:merge(b) -- 1..4000 and "x"
    assert.is_true(math.abs(a:count("k") - 4001) <= err * 4001)
    assert.has_error(function() a:merge(gw.distinct { precision = 10 }) end)
    assert.has_error(function() a:merge(gw.counter {}) end)
  end)

  it("reads items from views with of, one stream without by", function()
    local d = gw.distinct { of = { "src", "sport" } }
    for i = 1, 50 do
      d:add(testing.record("sock", sock { sport = 1000 + i % 20 }))
    end
    -- 20 items in 16384 registers: two share one about once in 90 (the
    -- hash's seed is random per process), and the estimate is then 19
    assert.is_true(math.abs(d:count() - 20) <= 1)
    local per = gw.distinct { by = "dst", of = "sport" }
    per:add(testing.record("sock", sock { sport = 1 }))
    per:add(testing.record("sock", sock { sport = 2 }))
    per:add(testing.record("sock", sock { sport = 2 }))
    assert.are.equal(2, per:count("10.0.0.2"))
    for k, n in per:pairs() do
      assert.are.equal("10.0.0.2", k)
      assert.are.equal(2, n)
    end
  end)
end)

describe("gw.quantiles", function()
  it("answers quantiles within accuracy, and merges", function()
    local q, r = gw.quantiles {}, gw.quantiles {}
    for i = 1, 1000 do q:add("lat", i) end
    for i = 1001, 2000 do r:add("lat", i) end
    assert.are.equal(1000, q:count("lat"))
    assert.are.equal(1, q:quantile("lat", 0))
    assert.are.equal(1000, q:quantile("lat", 1))
    local p50 = q:quantile("lat", 0.5) -- exact: the item of rank floor(0.5 * 999), 500
    assert.is_true(math.abs(p50 - 500) <= 0.01 * 500)
    local p99 = q:quantile("lat", 0.99)
    assert.is_true(math.abs(p99 - 990) <= 0.01 * 990)
    assert.is_nil(q:quantile("none", 0.5))
    assert.are.equal(0, q:count("none"))
    q:merge(r)
    assert.are.equal(2000, q:count("lat"))
    assert.is_true(math.abs(q:quantile("lat", 0.5) - 1000) <= 10)
    assert.has_error(function() q:quantile("lat", 1.5) end)
    assert.has_error(function() q:merge(gw.quantiles { accuracy = 0.02 }) end)
  end)

  it("takes negative values and zeros", function()
    local q = gw.quantiles { accuracy = 0.02 }
    for i = -100, 100 do q:add("x", i) end
    assert.are.equal(201, q:count("x"))
    assert.are.equal(-100, q:quantile("x", 0))
    assert.are.equal(0, q:quantile("x", 0.5))
    assert.is_true(math.abs(q:quantile("x", 0.25) + 50) <= 1)
    assert.has_error(function() q:add("x", math.huge) end)
  end)
end)

describe("gw.ewma", function()
  it("starts at the first value", function()
    local e = gw.ewma { half_life = "1h" }
    assert.are.equal(10, e:update("k", 10))
    assert.is_nil(e:get("other"))
    assert.is_true(math.abs(e:update("k", 20) - 15) < 0.01)
  end)
end)

describe("windows on the virtual clock", function()
  local P = "tests/spec/pipelines/agg_windows.lua"

  local function records(p, frames)
    local out = {}
    for _, f in ipairs(p:sent(frames)) do out[#out + 1] = f.record end
    return out
  end

  it("close tumbling windows aligned on the clock, empty ones too", function()
    local p = testing.pipeline(P, { clock = 1005 })
    p:push("sock", sock { sport = 1, rtt_us = 100 })
    p:push("sock", sock { sport = 2, rtt_us = 300 })
    p:push("sock", sock { sport = 2, rtt_us = 200 })
    p:push("sock", sock { dst = "10.0.0.3", dport = 80 })
    p:advance("4.999s")
    assert.are.equal(0, #p:sent("agg.counter"))
    p:advance("0.001s") -- 1010: the window [1000, 1010) closes
    local c = records(p, "agg.counter")
    assert.are.equal(1, #c)
    assert.are.equal(1000, c[1].start)
    assert.are.equal(1010, c[1].finish)
    assert.are.same({ ["10.0.0.2"] = 3, ["10.0.0.3"] = 1 }, c[1].keys)
    assert.are.equal(3 / 5, c[1].rate) -- the counter existed for 5 s of it
    assert.are.equal("10.0.0.2", c[1].top[1].key)
    local q = records(p, "agg.quantiles")[1]
    assert.are.equal(3, q.n)
    assert.is_true(math.abs(q.p50 - 200) <= 2)
    assert.are.equal(300, q.p100)
    assert.are.equal(2, records(p, "agg.distinct")[1].n)
    local t = records(p, "agg.topk")[1].top
    assert.are.same({ dst = "10.0.0.2", dport = 443 }, t[1].key)
    assert.are.equal(3, t[1].value)
    p:clear()
    p:advance("30s") -- three empty windows
    c = records(p, "agg.counter")
    assert.are.equal(3, #c)
    for i, w in ipairs(c) do
      assert.are.equal(1000 + 10 * i, w.start)
      assert.are.equal(0, w.size)
    end
    assert.are.equal(0, records(p, "agg.distinct")[3].n)
    p:close()
  end)

  it("slide: each window sums its panes", function()
    local p = testing.pipeline(P, { clock = 0, env = { WINDOW = "30s", SLIDE = "10s" } })
    for i = 1, 5 do
      for _ = 1, i do p:push("sock", sock { rtt_us = 100 * i }) end -- i records in pane i
      p:advance("10s")
    end
    local sums = {}
    for _, w in ipairs(records(p, "agg.counter")) do
      sums[#sums + 1] = w.keys["10.0.0.2"] or 0
      assert.are.equal(w.finish - 30, w.start)
    end
    assert.are.same({ 1, 3, 6, 9, 12 }, sums) -- 1, 1+2, 1+2+3, 2+3+4, 3+4+5
    local n = {}
    for _, w in ipairs(records(p, "agg.quantiles")) do n[#n + 1] = w.n end
    assert.are.same({ 1, 3, 6, 9, 12 }, n)
    local top = {}
    for _, w in ipairs(records(p, "agg.topk")) do top[#top + 1] = w.top[1].value end
    assert.are.same({ 1, 3, 6, 9, 12 }, top)
    -- the live sliding window between boundaries (5, 15, ... s): its panes merged
    local live, tops, p100 = {}, {}, {}
    for _, l in ipairs(records(p, "agg.live")) do
      if l.at % 10 == 5 then
        live[#live + 1] = l.x
        tops[#tops + 1] = l.top
        p100[#p100 + 1] = l.p100
        assert.are.equal(1, l.size)
      end
    end
    assert.are.same({ 1, 3, 6, 9, 12 }, live)
    assert.are.same({ 1, 3, 6, 9, 12 }, tops)
    assert.are.same({ 100, 200, 300, 400, 500 }, p100)
    p:close()
  end)

  it("decays the EWMA and rates counters on the clock, expiring keys", function()
    local p = testing.pipeline(P, { clock = 0 })
    p:push("sock", sock { rtt_us = 100, bytes_acked = 1000 })
    p:advance("10s") -- one half-life
    p:push("sock", sock { rtt_us = 200, bytes_acked = 3000 })
    local each = records(p, "agg.each")
    assert.are.equal(100, each[1].ewma)
    assert.is_nil(each[1].delta)
    -- weights 1/2 and 1: (100 / 2 + 200) / 1.5
    assert.is_true(math.abs(each[2].ewma - 250 / 1.5) < 1e-9)
    assert.are.equal(2000, each[2].delta)
    assert.are.equal(200, each[2].per_second)
    p:advance("31s") -- past expire: the key starts over
    p:push("sock", sock { rtt_us = 200, bytes_acked = 5000 })
    each = records(p, "agg.each")
    assert.is_nil(each[3].delta)
    assert.are.equal(1, each[3].keys)
    p:close()
  end)
end)

describe("the clock going back (module mode)", function()
  it("never closes a window early", function()
    local closed = 0
    finally(function() gw._virtual_clock(nil) end)
    gw._virtual_clock(5000.5) -- the window [5000, 5001)
    local c = gw.counter { window = "1s", on_close = function() closed = closed + 1 end }
    c:add("x")
    gw._virtual_clock(1400.5) -- an hour back
    gw.run("1.3s")
    assert.are.equal(0, closed)
    assert.are.equal(1, c:get("x"))
    gw._virtual_clock(5001.2) -- forward again, past the window's end
    gw.run("2.5s") -- the timer looks again at least once a slide
    assert.are.equal(1, closed)
    assert.are.equal(1, c:stats().windows)
    assert.are.equal(0, c:get("x"))
  end)

  it("lends the window object for on_close only; adds made in it go to the next window", function()
    local kept, inside
    local c
    gw._virtual_clock(1000.5) -- the window [1000, 1001)
    c = gw.counter { window = "1s", on_close = function(w)
      if kept then return end
      kept, inside = w, w:get("x")
      c:add("x", 10) -- the next window's
    end }
    finally(function() gw._virtual_clock(nil) end)
    c:add("x")
    gw._virtual_clock(1001.2) -- one window ends
    gw.run("2.5s")
    assert.are.equal(1, inside)
    assert.are.equal(10, c:get("x"))
    assert.has_error(function() kept:get("x") end, "gw.counter window used after its on_close returned")
    assert.has_error(function() kept:start() end)
    assert.has_error(function() kept.add(kept, "x") end)
    -- the window outlives its aggregator: still an error, never a read of freed memory
    c = nil
    collectgarbage()
    collectgarbage()
    assert.has_error(function() kept:size() end, "gw.counter window used after its on_close returned")
    assert.has_error(function() gw.counter {}:merge(kept) end)
  end)

  it("closes the windows a jump forward missed, in order, up to a bound", function()
    local finishes = {}
    finally(function() gw._virtual_clock(nil) end)
    gw._virtual_clock(1000.5)
    local c = gw.counter { window = "1s", on_close = function(w) finishes[#finishes + 1] = w:finish() end }
    gw._virtual_clock(8200.5) -- two hours on: 7200 windows ended
    gw.run("1.5s")
    local st = c:stats()
    assert.are.equal(4096, #finishes)
    assert.are.equal(4096, st.windows)
    for i = 1, #finishes do assert.are.equal(1000 + i, finishes[i]) end
    assert.are.equal(7200 - 4096, st.windows_skipped)
  end)
end)
