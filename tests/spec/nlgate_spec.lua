-- The Lua API through the loadable module nlgate.so: schema, record views,
-- the sockets source (real dumps on loopback: sock_diag needs no privilege),
-- handler errors, timers and the unix feed.
local gw = require "nlgate"

-- A helper process holding a TCP listener on 127.0.0.1 and one connection
-- to it; returns the listening port, the client port, and a closer.
local function listener()
  local p = io.popen([[python3 -c '
import os, socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
print(s.getsockname()[1], c.getsockname()[1], os.getpid(), flush=True)
time.sleep(120)
']], "r")
  local line = p:read("l")
  local port, cport, pid = line:match("(%d+) (%d+) (%d+)")
  return tonumber(port), tonumber(cport), function()
    os.execute("kill " .. pid)
    p:close()
  end
end

describe("nlgate module", function()
  it("exposes the schema", function()
    local fields = gw.fields("sock")
    local byname = {}
    for _, f in ipairs(fields) do byname[f.name] = f end
    assert.are.equal("u32", byname.rtt_us.type)
    assert.truthy(byname.rtt_us.desc:find("us"))
    assert.are.equal("enum", byname.state.type)
    assert.are.equal("addr", byname.src.type)
    assert.has_error(function() gw.fields("nope") end)
  end)

  it("rejects bad source options with a clear message", function()
    assert.has_error(function() gw.sockets { proto = "sctp", start = false } end,
                     "gw.sockets: bad proto 'sctp' (tcp, udp, mptcp, all)")
    assert.has_error(function() gw.sockets { every = "soon", start = false } end)
    local ok, err = pcall(gw.sockets, { states = "sleeping", start = false })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("sleeping"))
  end)
end)

describe("sockets source", function()
  local port, cport, close
  setup(function() port, cport, close = listener() end)
  teardown(function() close() end)

  it("delivers records to :each as views of the C record", function()
    local src = gw.sockets { proto = "tcp", family = "inet", start = false }
    local found, copy, kept
    src:each(function(s)
      if s.sport == port and s.state == "LISTEN" then
        found = true
        assert.are.equal("127.0.0.1", s.src)
        assert.are.equal("tcp", s.proto)
        assert.are.equal("inet", s.family)
        assert.is_true(s.inode > 0)
        copy = s:table()
        kept = s
      end
    end)
    local n = src:poll()
    assert.is_true(n >= 3)
    assert.is_true(found)
    assert.are.equal(port, copy.sport)
    assert.are.equal("LISTEN", copy.state)
    -- a view is only valid during its handler
    assert.has_error(function() return kept.sport end)
    src:close()
  end)

  it("gives established sockets their tcp_info", function()
    local src = gw.sockets { proto = "tcp", states = "established", start = false }
    local rec
    src:each(function(s) if s.sport == cport then rec = s:table() end end)
    src:poll()
    assert.is_not_nil(rec)
    assert.are.equal("ESTAB", rec.state)
    assert.are.equal(port, rec.dport)
    assert.is_true(rec.rtt_us > 0)
    assert.is_true(rec.snd_cwnd > 0)
    assert.is_string(rec.cong)
    src:close()
  end)

  it("hands a whole poll to :dump as a batch", function()
    local src = gw.sockets { proto = "tcp", start = false }
    local each, seen = 0, nil
    src:each(function() each = each + 1 end)
    src:dump(function(b)
      seen = { n = #b, first = b[1], stats = b:stats() }
      local it = 0
      for i, s in b:records() do it = i; assert.is_number(s.sport) end
      seen.iterated = it
    end)
    src:poll()
    assert.are.equal(each, seen.n)
    assert.are.equal(each, seen.iterated)
    assert.is_number(seen.first.sport) -- batch[i] is a copy: still valid here
    assert.are.equal(1, seen.stats.polls)
    src:close()
  end)

  it("refuses unknown fields and writes", function()
    local src = gw.sockets { proto = "tcp", start = false }
    local e1, e2
    src:each(function(s)
      e1 = e1 or select(2, pcall(function() return s.rtt end))
      e2 = e2 or select(2, pcall(function() s.sport = 1 end))
    end)
    src:poll()
    assert.truthy(tostring(e1):find("no field 'rtt'"))
    assert.truthy(tostring(e2):find("read%-only"))
    src:close()
  end)

  it("counts a raising handler and keeps going", function()
    local before = gw.stats().script.errors
    local src = gw.sockets { proto = "tcp", start = false }
    local calls = 0
    src:each(function() calls = calls + 1; error("boom") end)
    src:poll()
    assert.is_true(calls >= 3)
    assert.are.equal(before + calls, gw.stats().script.errors)
    assert.are.equal(calls, src:stats().handler_errors)
    src:close()
  end)

  it("closes from inside its own handlers, in :poll() and on its timer", function()
    local src = gw.sockets { proto = "tcp", start = false }
    local n = 0
    src:each(function() n = n + 1; src:close() end)
    src:poll()
    assert.are.equal(1, n)
    assert.is_false(src:stats().open)
    assert.has_error(function() src:poll() end, "sockets source is closed")

    local timed = gw.sockets { proto = "tcp", every = "20ms" }
    local batches = 0
    timed:dump(function() batches = batches + 1; timed:close() end)
    gw.after("200ms", function() gw.stop() end)
    gw.run("2s")
    assert.are.equal(1, batches)
    collectgarbage()
  end)

  it("takes options from its table and refuses unknown ones", function()
    assert.has_error(function() gw.sockets { prto = "tcp", start = false } end,
                     "gw.sockets: unknown option 'prto'")
    assert.has_error(function() gw.sockets { every = "5ms", start = false } end)
    assert.has_error(function() gw.sockets { start = "no" } end,
                     "gw.sockets: start must be true or false")
    local src = gw.sockets { proto = { "tcp", "udp" }, every = 0.5, start = false }
    assert.is_true(src:poll() >= 0)
    src:close()
  end)

  it("keeps gw.state, a plain table the daemon carries across reloads", function()
    assert.is_table(gw.state)
    gw.state.answer = 42
    assert.are.equal(42, require("nlgate").state.answer)
  end)

  it("polls on its own timer while the loop runs", function()
    local src = gw.sockets { proto = "tcp", every = "50ms" }
    local polls = 0
    src:dump(function() polls = polls + 1; if polls == 3 then gw.stop() end end)
    assert.is_true(gw.run("5s"))
    assert.are.equal(3, polls)
    local st = gw.stats().sockets
    assert.is_table(st)
    src:close()
  end)
end)

describe("timers", function()
  it("fire repeatedly and can be cancelled", function()
    local n = 0
    local t
    t = gw.every("20ms", function(now)
      assert.is_number(now)
      n = n + 1
      if n == 3 then t:cancel(); gw.after("30ms", function() gw.stop() end) end
    end)
    assert.is_true(gw.run("5s"))
    assert.are.equal(3, n)
  end)
end)

describe("unix feed", function()
  it("streams frames to a connected client", function()
    local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
    local path, out = dir .. "/feed.sock", dir .. "/tail.out"
    local feed = gw.unix { path = path }
    assert(os.execute(string.format("%s tail -n 2 %s > %s 2>&1 &", os.getenv("NLGATE"), path, out)))
    local deadline = os.time() + 5
    while feed:stats().clients == 0 and os.time() < deadline do gw.run("20ms") end
    assert.are.equal(1, feed:stats().clients)
    feed:send("t.table", { a = 1, list = { 1, 2, 3 } })
    local src = gw.sockets { proto = "tcp", start = false }
    local sent = false
    src:each(function(s) if not sent then feed:send("t.sock", s); sent = true end end)
    src:poll()
    while feed:stats().clients > 0 and os.time() < deadline do gw.run("20ms") end
    local text = io.open(out):read("a")
    assert.truthy(text:find('"tag":"t.table"', 1, true))
    assert.truthy(text:find('"list":[1,2,3]', 1, true))
    assert.truthy(text:find('"tag":"t.sock"', 1, true))
    assert.truthy(text:find('"sport":', 1, true))
    feed:close()
    src:close()
    os.execute("rm -rf " .. dir)
  end)
end)
