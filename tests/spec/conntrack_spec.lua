-- gw.conntrack through the loadable module nlgate.so: option checking (no
-- privilege needed), the CAP_NET_ADMIN message (as an unprivileged child),
-- and, as root, real ctnetlink events from a network namespace this spec
-- creates with an nft rule that turns conntrack on; flows are made there with
-- UDP on its loopback and ended with `conntrack -D`.
local gw = require "nlgate"

local root = io.popen("id -u"):read("l") == "0"
local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end
local tools = have("ip") and have("nft") and have("conntrack") and have("python3")

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok, "command failed: " .. cmd)
end

-- Run the loop in slices until cond() holds (state, not a fixed sleep).
local function run_until(cond, secs)
  local deadline = os.time() + (secs or 10)
  while not cond() do
    if os.time() > deadline then return false end
    gw.run("50ms")
  end
  return true
end

describe("gw.conntrack options", function()
  it("rejects bad options with a clear message, before touching the kernel", function()
    local cases = {
      { { events = "new,born" }, "bad events 'new,born'" },
      { { events = { "new", "gone" } }, "bad events 'new,gone'" },
      { { reliable = "maybe" }, "bad reliable 'maybe'" },
      { { family = "ipx" }, "bad family 'ipx'" },
      { { proto = "smtp" }, "bad proto 'smtp'" },
      { { proto = 300 }, "bad proto '300'" },
      { { mark = "0x10/zz" }, "bad mark '0x10/zz'" },
      { { zone = 70000 }, "bad zone" },
      { { rcvbuf = "lots" }, "bad rcvbuf" },
      { { dump = "yes" }, "dump must be true or false" },
      { { filter = 42 }, "function expected" },
      { { netns = "../etc" }, "bad netns" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(gw.conntrack, c[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true),
                    "expected '" .. c[2] .. "' in: " .. tostring(err))
    end
  end)

  it("names CAP_NET_ADMIN when the capability is missing", function()
    local prog = [[local ok, err = pcall(require("nlgate").conntrack, {})
      io.write(ok and "OPENED" or tostring(err))]]
    local cmd
    if root then
      if not have("setpriv") then return pending("needs setpriv to drop privileges") end
      -- an unprivileged child: no uid 0, no capabilities at all
      cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all " ..
            "--bounding-set=-all lua5.4 -e '" .. prog .. "' 2>&1"
    else
      cmd = "lua5.4 -e '" .. prog .. "' 2>&1"
    end
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    if out:find("module 'nlgate' not found", 1, true) then
      return pending("the unprivileged child cannot load nlgate.so: " .. out:sub(1, 200))
    end
    assert.truthy(out:find("gw.conntrack:", 1, true), out)
    assert.truthy(out:find("CAP_NET_ADMIN", 1, true), out)
  end)
end)

describe("conntrack source", function()
  if not root or not tools then
    it("needs root, ip, nft, conntrack and python3", function()
      pending(not root and "needs root" or "needs ip, nft, conntrack and python3")
    end)
    return
  end

  local ns = string.format("nlgspec-ct-%d-%d", math.random(1, 1e6), os.time() % 100000)
  local nextport = 20000

  setup(function()
    sh("ip netns add " .. ns)
    sh("ip -n " .. ns .. " link set lo up")
    -- a ct expression in a hook is what turns conntrack on in a namespace
    sh("ip netns exec " .. ns .. " nft -f - <<'EOF'\n" .. [[
table inet nlgspec {
  chain out { type filter hook output priority 0; policy accept; ct state new counter; }
  chain pre { type filter hook prerouting priority 0; policy accept; ct state new counter; }
}
EOF]])
    sh("ip netns exec " .. ns .. " sysctl -qw net.netfilter.nf_conntrack_events=1")
  end)
  teardown(function()
    os.execute("ip netns del " .. ns .. " 2>/dev/null")
  end)

  -- n new UDP flows 127.0.0.1:sport → 127.0.0.1:dport inside ns; returns
  -- their { sport, dport } pairs.
  local function flows(n, dport)
    local pairs_, args = {}, {}
    for _ = 1, n do
      nextport = nextport + 1
      local p = { sport = nextport, dport = dport or (nextport + 10000) }
      pairs_[#pairs_ + 1] = p
      args[#args + 1] = p.sport .. ":" .. p.dport
    end
    sh("ip netns exec " .. ns .. [[ python3 -c '
import socket, sys
for a in sys.argv[1:]:
    sp, dp = map(int, a.split(":"))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", sp))
    s.sendto(b"x", ("127.0.0.1", dp))
    s.close()
' ]] .. table.concat(args, " "))
    return pairs_
  end

  local function destroy(p)
    sh("ip netns exec " .. ns .. " conntrack -D -p udp --orig-port-src " .. p.sport ..
       " --orig-port-dst " .. p.dport .. " >/dev/null 2>&1")
  end

  -- the kernel's id of a flow, from `conntrack -L -o id`
  local function kernel_id(p)
    local f = io.popen("ip netns exec " .. ns .. " conntrack -L -p udp --orig-port-src " ..
                       p.sport .. " --orig-port-dst " .. p.dport .. " -o id 2>/dev/null")
    local out = f:read("a")
    f:close()
    return tonumber(out:match("id=(%d+)"))
  end

  local function key(e) return e.orig_sport .. ":" .. e.orig_dport end

  -- open sources in gw.stats().conntrack watching our namespace
  local function listed()
    local n = 0
    for _, s in ipairs(gw.stats().conntrack or {}) do
      if s.netns == ns and s.open then n = n + 1 end
    end
    return n
  end

  it("delivers NEW and DESTROY events as views with the flow's fields", function()
    local src = gw.conntrack { netns = ns, events = "new,destroy", proto = "udp" }
    local got = {}
    src:each(function(e)
      got[#got + 1] = e:table()
    end)
    assert.truthy(run_until(function() return not src:stats().syncing end))
    local fl = flows(3)
    local ids = {}
    for _, p in ipairs(fl) do ids[p.sport .. ":" .. p.dport] = kernel_id(p) end
    local function seen(event)
      local n = 0
      for _, e in ipairs(got) do
        if e.event == event and ids[key(e)] then n = n + 1 end
      end
      return n
    end
    assert.truthy(run_until(function() return seen("new") == 3 end), "3 NEW events")
    for _, p in ipairs(fl) do destroy(p) end
    assert.truthy(run_until(function() return seen("destroy") == 3 end), "3 DESTROY events")
    for _, e in ipairs(got) do
      local id = ids[key(e)]
      if id then
        assert.are.equal(id, e.id) -- the id `conntrack -L` shows
        assert.are.equal("udp", e.proto)
        assert.are.equal("inet", e.family)
        assert.are.equal("127.0.0.1", e.orig_src)
        assert.are.equal("127.0.0.1", e.orig_dst)
        assert.are.equal("127.0.0.1", e.reply_src)
        assert.are.equal(e.orig_sport, e.reply_dport)
        assert.is_false(e.synthetic)
        assert.is_false(e.dump)
        assert.are.equal(0, e.zone)
        assert.is_table(e.status)
      end
    end
    local st = src:stats()
    assert.is_true(st.new >= 3 and st.destroy >= 3 and st.received >= 6)
    assert.is_true(st.delivered >= 6)
    assert.are.equal("new,destroy", st.events)
    assert.are.equal("destroy", st.reliable)
    assert.are.equal(ns, st.netns)
    src:close()
  end)

  it("lists flows that exist at start from the initial dump", function()
    local fl = flows(2)
    local want = {}
    for _, p in ipairs(fl) do want[p.sport .. ":" .. p.dport] = kernel_id(p) end
    local src = gw.conntrack { netns = ns, proto = "udp" }
    local dumped = {}
    src:each(function(e)
      if e.dump and want[key(e)] then
        assert.are.equal("new", e.event)
        dumped[key(e)] = e.id
      end
    end)
    assert.truthy(run_until(function() return not src:stats().syncing end))
    assert.are.same(want, dumped)
    assert.is_true(src:stats().dumped >= 2)
    for _, p in ipairs(fl) do destroy(p) end
    src:close()

    -- dump = false: no listing
    local quiet = gw.conntrack { netns = ns, dump = false, resync = false }
    local n = 0
    quiet:each(function(e) if e.dump then n = n + 1 end end)
    gw.run("300ms")
    assert.are.equal(0, n)
    assert.are.equal(0, quiet:stats().dumped)
    quiet:close()
  end)

  it("counts a raising handler and keeps going", function()
    local src = gw.conntrack { netns = ns, dump = false, events = "new" }
    local calls, errors0 = 0, gw.stats().script.errors
    src:each(function()
      calls = calls + 1
      if calls == 1 then error("deliberate failure in conntrack:each") end
    end)
    flows(1)
    assert.truthy(run_until(function() return calls >= 1 end))
    flows(2)
    assert.truthy(run_until(function() return calls >= 3 end), "events after the raise")
    assert.are.equal(1, src:stats().handler_errors)
    assert.are.equal(errors0 + 1, gw.stats().script.errors)
    src:close()
  end)

  it("applies the script filter before the handlers and counts what it dropped", function()
    local blocked = 33333
    local src = gw.conntrack {
      netns = ns, dump = false, events = "new",
      filter = function(e) return e.orig_dport ~= blocked end,
    }
    local seen, batched, bstats = {}, {}, nil
    src:each(function(e) seen[#seen + 1] = e.orig_dport end)
    src:batch(function(b)
      for _, e in b:records() do batched[#batched + 1] = e.orig_dport end
      bstats = b:stats()
    end)
    flows(3, blocked)
    local ok = flows(2)
    assert.truthy(run_until(function() return #seen >= 2 end))
    gw.run("200ms") -- anything late would show up here
    for _, d in ipairs(seen) do assert.are_not.equal(blocked, d) end
    assert.are.equal(2, #seen)
    assert.are.equal(ok[2].dport, seen[2])
    local st = src:stats()
    assert.are.equal(3, st.script_filtered)
    assert.are.equal(2, st.delivered)
    assert.are.same(seen, batched) -- the batches hold what :each saw, in order
    assert.is_true(st.batches >= 1)
    assert.is_true(bstats.delivered >= 1)

    -- a raising filter keeps the event and is counted
    src:close()
    local bad = gw.conntrack {
      netns = ns, dump = false, events = "new",
      filter = function(e) if e.orig_dport == blocked then error("bad filter") end return true end,
    }
    local n = 0
    bad:each(function() n = n + 1 end)
    flows(1, blocked)
    assert.truthy(run_until(function() return n >= 1 end))
    assert.are.equal(1, bad:stats().filter_errors)
    bad:close()
  end)

  it("filters in the kernel by mark and family", function()
    local src = gw.conntrack { netns = ns, family = "inet6", dump = false }
    local n = 0
    src:each(function() n = n + 1 end)
    flows(2) -- IPv4: filtered
    gw.run("300ms")
    assert.are.equal(0, n)
    assert.is_true(src:stats().filtered >= 2)
    src:close()
    local m = gw.conntrack { netns = ns, mark = "0x10/0xff" }
    assert.truthy(run_until(function() return not m:stats().syncing end))
    m:close()
  end)

  it("moves its counters, resyncs on demand, and shows in gw.stats()", function()
    local src = gw.conntrack { netns = ns, proto = "udp" }
    assert.truthy(run_until(function() return not src:stats().syncing end))
    local before = src:stats()
    flows(2)
    assert.truthy(run_until(function() return src:stats().new >= before.new + 2 end))
    assert.is_true(src:resync())
    assert.truthy(run_until(function() return src:stats().resyncs == before.resyncs + 1 end))
    -- nf_conntrack_max is host-wide: another test may change it meanwhile
    local function ctmax()
      local f = assert(io.open("/proc/sys/net/netfilter/nf_conntrack_max"))
      local v = tonumber(f:read("l"))
      f:close()
      return v
    end
    local max0 = ctmax()
    local st = src:stats()
    local max1 = ctmax()
    assert.are.equal(0, st.resynced) -- nothing was missed
    assert.are.equal(0, st.lost)
    assert.is_true(st.received > before.received)
    assert.is_true(st.live >= 2)
    assert.is_true(st.rcvbuf > 0)
    -- the table limit, for scripts (which cannot read /proc themselves)
    assert.is_true(st.max == max0 or st.max == max1, "stats().max " .. tostring(st.max))
    local n = listed()
    assert.is_true(n >= 1)
    src:close()
    assert.are.equal(n - 1, listed())
  end)

  it("unhooks on close, also from inside its own handler", function()
    local src = gw.conntrack { netns = ns, dump = false, events = "new" }
    local open = listed()
    local n = 0
    src:each(function() n = n + 1 end)
    src:close()
    src:close() -- twice is fine
    flows(2)
    gw.run("300ms")
    assert.are.equal(0, n)
    assert.is_false(src:stats().open)
    assert.has_error(function() src:each(print) end, "conntrack source is closed")
    assert.has_error(function() src:resync() end, "conntrack source is closed")
    assert.are.equal(open - 1, listed())

    local inner = gw.conntrack { netns = ns, dump = false, events = "new" }
    local m = 0
    inner:each(function()
      m = m + 1
      inner:close()
    end)
    flows(5)
    assert.truthy(run_until(function() return m >= 1 end))
    gw.run("300ms")
    assert.are.equal(1, m)
    assert.is_false(inner:stats().open)
    collectgarbage()
  end)
end)
