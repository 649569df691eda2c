-- gw.packets through the loadable module nlgate.so, on the committed capture
-- tests/fixtures/capture.pcap (tests/fixtures/make_pcap.py states every size):
-- options checked before anything opens, pkt views, flow records with their
-- counts, batches, the script filter beside the tcpdump filter, counters, and
-- the end of the file. No privilege needed: a file is read, no socket opened.
local gw = require "nlgate"

local PCAP = (os.getenv("NLGATE_SRC") or ".") .. "/tests/fixtures/capture.pcap"

local function run_until(cond, secs)
  local deadline = os.time() + (secs or 10)
  while not cond() do
    if os.time() > deadline then return false end
    gw.run("20ms")
  end
  return true
end

describe("gw.packets options", function()
  it("refuses bad options with the option's name", function()
    local cases = {
      { { file = PCAP, fanout = "hsh" }, "bad fanout 'hsh'" },
      { { file = PCAP, snaplen = 10 }, "snaplen" },
      { { file = PCAP, flows = { idel = "1s" } }, "unknown option 'flows.idel'" },
      { { file = PCAP, ring = { blok = "1M" } }, "unknown option 'ring.blok'" },
      { { file = PCAP, dispatch = "mmapp" }, "bad dispatch 'mmapp'" },
      { { file = PCAP, filter = "udp port" }, "filter 'udp port'" },
      { { file = "/nonexistent/x.pcap" }, "/nonexistent/x.pcap" },
      { { file = PCAP, ring_block = "3000" }, "ring_block" },
      { { file = PCAP, queue = 1000 }, "bad queue 1000" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(gw.packets, c[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), tostring(err) .. " lacks " .. c[2])
      assert.truthy(tostring(err):find("gw.packets", 1, true))
    end
  end)

  it("refuses a file that is not a capture, naming it", function()
    local ok, err = pcall(gw.packets, { file = (os.getenv("NLGATE_SRC") or ".") .. "/README.md" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("README.md", 1, true))
  end)
end)

-- A pcap file (Ethernet, microsecond stamps) of frames, at a new temporary
-- path; the caller removes it.
local function pcap_file(frames)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(string.pack("<I4I2I2i4I4I4I4", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
  for i, frame in ipairs(frames) do
    f:write(string.pack("<I4I4I4I4", 1700000000, i, #frame, #frame), frame)
  end
  f:close()
  return path
end

-- Values got[j] of the fields named sel[j], against t (a record's table
-- copy): a mismatch is added to bad, labelled with row.
local function compare_fields(sel, got, t, bad, row)
  for j = 1, #sel do
    local want, v = t[sel[j]], got[j]
    if type(want) == "table" then
      for f in pairs(want) do if not v or v[f] ~= want[f] then bad[#bad + 1] = sel[j] end end
    elseif want ~= v then
      bad[#bad + 1] = row .. " " .. sel[j] .. ": " .. tostring(want) .. " ~= " .. tostring(v)
    end
  end
end

describe("gw.packets on a pcap file", function()
  it("gives one pkt view per packet, decoded", function()
    local n, first, vlans, frags, arp = 0, nil, 0, 0, 0
    local ended = false
    local src = gw.packets { file = PCAP }
    src:each(function(p)
      n = n + 1
      if n == 1 then
        first = { src = p.src, dst = p.dst, sport = p.sport, dport = p.dport, proto = p.proto,
                  flags = p.tcp_flags, wire = p.wire_len, t = p.time_ns, seq = p.seq }
      end
      if p.vlan == 42 then vlans = vlans + 1 end
      if p.frag_id then frags = frags + 1 end
      if p.ethertype == 0x0806 then arp = arp + 1 end
    end)
    assert.is_true(run_until(function()
      ended = src:stats().ended
      return ended
    end))
    assert.equal(24, n)
    assert.same({ src = "10.0.0.1", dst = "10.0.0.2", sport = 40000, dport = 80, proto = "tcp",
                  flags = { SYN = true }, wire = 54, t = 1700000000001000000, seq = 100 }, first)
    assert.equal(3, vlans)
    assert.equal(5, frags) -- three IPv4 fragments, two IPv6
    assert.equal(1, arp)
    local st = src:stats()
    assert.equal(24, st.received)
    assert.equal(0, st.ring_drops)
    assert.equal("file", st.mode)
    src:close()
  end)

  it("reads every field of every view as its table copy says, names and addresses remembered", function()
    -- the state remembers the names read (by their string objects) and the
    -- texts of the addresses read: read all fields, forwards and backwards,
    -- record after record (the addresses change), and compare with
    -- p:table(). Mismatches
    -- are collected: an assert inside the handler would only be logged.
    local kept, names, bad, checked, addrs = nil, {}, {}, 0, {}
    local src = gw.packets { file = PCAP }
    src:each(function(p)
      local t = p:table()
      for k in pairs(t) do names[k] = true end
      local list = {}
      for k in pairs(names) do list[#list + 1] = k end
      table.sort(list)
      for pass = 1, 3 do
        for i = 1, #list do
          local k = list[pass == 2 and #list + 1 - i or i]
          local a, b = t[k], p[k]
          if type(a) == "table" then
            for f in pairs(a) do if not b or b[f] ~= a[f] then bad[#bad + 1] = k end end
          elseif a ~= b then
            bad[#bad + 1] = k .. ": " .. tostring(a) .. " ~= " .. tostring(b)
          end
        end
        if t.src ~= p.src or t.dst ~= p.dst then bad[#bad + 1] = "src/dst" end
      end
      if pcall(function() return p[1] end) then bad[#bad + 1] = "p[1] read" end
      if pcall(function() return p.no_such_field end) then bad[#bad + 1] = "no_such_field read" end
      if t.src then addrs[t.src] = true end
      kept = p
      checked = checked + 1
    end)
    assert.is_true(run_until(function() return src:stats().ended end))
    assert.same({}, bad)
    assert.equal(24, checked)
    assert.truthy(next(addrs, next(addrs)), "more than one source address")
    -- a view kept past its handler still refuses to be read
    assert.has_error(function() return kept.src end)
    assert.has_error(function() return kept.sport end)
    src:close()
  end)

  it("runs :each over a run of records: raises counted, a disabled handler, a close", function()
    -- 150 UDP packets (the worker hands them over in runs): a pcap made here
    local frames = {}
    for i = 1, 150 do
      local udp = string.pack(">I2I2I2I2", 10000 + i, 9, 8, 0)
      local ip = string.pack(">BBI2I2I2BBI2", 0x45, 0, 28, i, 0, 64, 17, 0) ..
        string.char(10, 0, 0, 1, 10, 0, 0, 2)
      frames[i] = string.rep("\2", 6) .. string.rep("\4", 6) .. "\8\0" .. ip .. udp
    end
    local path = pcap_file(frames)

    -- every third record raises: the others are all handled, in order
    local n, order = 0, {}
    local src = gw.packets { file = path }
    src:each(function(p)
      n = n + 1
      if n % 3 == 0 then error("deliberate failure, record " .. n) end
      order[#order + 1] = p.sport - 10000
    end)
    assert.is_true(run_until(function() return src:stats().ended end))
    local st = src:stats()
    assert.equal(150, n)
    assert.equal(150, st.delivered)
    assert.equal(50, st.handler_errors)
    assert.equal(100, #order)
    for i = 2, #order do assert.is_true(order[i] > order[i - 1]) end
    src:close()

    -- one that always raises is disabled after 100 in a row; the rest are
    -- still delivered (to no handler), and a :batch handler sees them all
    n = 0
    local batched = 0
    src = gw.packets { file = path }
    src:each(function() n = n + 1; error("always") end)
    src:batch(function(b) batched = batched + #b end)
    assert.is_true(run_until(function() return src:stats().ended and batched == 150 end))
    st = src:stats()
    assert.equal(100, n)
    assert.equal(100, st.handler_errors)
    assert.equal(150, st.delivered)
    src:close()

    -- a handler that closes its source: no record after that one
    n = 0
    src = gw.packets { file = path }
    src:each(function() n = n + 1; if n == 5 then src:close() end end)
    run_until(function() return not src:stats().open end)
    gw.run("100ms")
    assert.equal(5, n)

    -- a handler replaced from inside itself: the new one takes the next record
    local a, b = 0, 0
    src = gw.packets { file = path }
    local function second() b = b + 1 end
    src:each(function() a = a + 1; if a == 7 then src:each(second) end end)
    assert.is_true(run_until(function() return src:stats().ended end))
    assert.equal(7, a)
    assert.equal(143, b)
    src:close()
    os.remove(path)
  end)

  it("folds packets into flows with both directions counted", function()
    local flows = {}
    local src = gw.packets { file = PCAP, flows = { idle = "1m" } }
    src:each(function(f)
      flows[#flows + 1] = string.format("%s %s:%d>%s:%d v%d %d/%d %d/%d %s", f.proto, f.src,
        f.sport or 0, f.dst, f.dport or 0, f.vlan or 0, f.fwd_packets, f.fwd_bytes,
        f.rev_packets, f.rev_bytes, f.end_reason)
    end)
    assert.is_true(run_until(function() return src:stats().ended end))
    table.sort(flows)
    assert.same({
      "icmp 10.0.0.1:0>10.0.0.4:0 v0 1/66 1/66 shutdown",
      "tcp 10.0.0.1:40000>10.0.0.2:80 v0 6/424 4/516 fin",
      "udp 10.0.0.1:5353>10.0.0.3:53 v0 1/82 1/122 shutdown",
      "udp 10.0.0.1:7000>10.0.0.2:7001 v0 3/3110 0/0 shutdown",
      "udp 10.0.1.1:1111>10.0.1.2:2222 v42 2/112 1/56 shutdown",
      "udp fd00::1:3000>fd00::2:4000 v0 1/82 0/0 shutdown",
      "udp fd00::1:5000>fd00::2:6000 v0 2/2132 0/0 shutdown",
    }, flows)
    local st = src:stats()
    assert.equal(7, st.flows)
    assert.equal(1, st.nonip)
    assert.equal(3, st.frag_matched) -- two IPv4 and one IPv6 non-first fragment
    src:close()
  end)

  it("gives a batch's fields by name, as its views give them", function()
    -- b:fields(names...) against b:records() and b[i]:table(), every field
    -- of every record (so every address, absent fields as nil); names it
    -- does not know raise, as a view's read does; outside the handler the
    -- batch is empty
    local names, bad, rows, kept = {}, {}, 0, nil
    for _, f in ipairs(gw.fields("pkt")) do names[#names + 1] = f.name end
    local src = gw.packets { file = PCAP }
    src:batch(function(b)
      local views = {}
      for i, r in b:records() do views[i] = r:table() end
      for k = 1, #names, 4 do
        local sel = { names[k], names[k + 1], names[k + 2], names[k + 3] }
        for i, a, c, d, e in b:fields(table.unpack(sel)) do
          compare_fields(sel, { a, c, d, e }, views[i], bad, i)
          if k == 1 then rows = rows + 1 end
        end
      end
      if pcall(b.fields, b, "no_such_field") then bad[#bad + 1] = "no_such_field" end
      if pcall(b.fields, b) then bad[#bad + 1] = "no names" end
      kept = b
    end)
    assert.is_true(run_until(function() return src:stats().ended end))
    assert.same({}, bad)
    assert.equal(24, rows)
    local after = 0
    for _ in kept:fields("src") do after = after + 1 end
    assert.equal(0, after)
    src:close()
  end)

  it("gives :each the fields it names as arguments, as its view gives them", function()
    -- src:each(fn, names...) calls fn(r, r.name1, ...), the values read in C:
    -- every field of every record, in runs (no filter) and one by one (a
    -- script filter set); a name it does not know raises at src:each
    local names = {}
    for _, f in ipairs(gw.fields("pkt")) do names[#names + 1] = f.name end
    for _, filtered in ipairs({ false, true }) do
      for k = 1, #names, 16 do
        local sel = { table.unpack(names, k, math.min(k + 15, #names)) }
        local bad, rows = {}, 0
        local src = gw.packets { file = PCAP, filter = filtered and function() return true end or nil }
        src:each(function(r, ...)
          rows = rows + 1
          compare_fields(sel, { ... }, r:table(), bad, rows)
        end, table.unpack(sel))
        assert.is_true(run_until(function() return src:stats().ended end))
        assert.same({}, bad)
        assert.equal(24, rows)
        local ok, err = pcall(src.each, src, function() end, "src", "no_such_field")
        assert.is_false(ok)
        assert.truthy(tostring(err):find("pkt record has no field 'no_such_field'", 1, true))
        local many = {}
        for i = 1, 17 do many[i] = "src" end
        assert.is_false(pcall(src.each, src, function() end, table.unpack(many)))
        src:close()
      end
    end
  end)

  it("gives every address's own text, past what the state remembers", function()
    -- 1,000 packets from 600 sources (IPv4 and IPv6), more than the 256
    -- address texts a state keeps: each p.src as its table copy says
    local frames = {}
    for i = 1, 1000 do
      local k = (i * 7) % 600
      local udp = string.pack(">I2I2I2I2", 10000 + i, 9, 8, 0)
      local frame
      if k % 2 == 0 then
        local ip = string.pack(">BBI2I2I2BBI2", 0x45, 0, 28, i, 0, 64, 17, 0) ..
          string.char(10, 9, k >> 8, k & 255, 10, 0, 0, 2)
        frame = string.rep("\2", 6) .. string.rep("\4", 6) .. "\8\0" .. ip .. udp
      else
        local ip = string.pack(">I4I2BB", 0x60000000, 8, 17, 64) ..
          string.char(0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, k >> 8, k & 255) ..
          string.char(0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)
        frame = string.rep("\2", 6) .. string.rep("\4", 6) .. "\134\221" .. ip .. udp
      end
      frames[i] = frame
    end
    local path = pcap_file(frames)
    local n, bad, srcs = 0, {}, {}
    local src = gw.packets { file = path }
    src:each(function(p)
      n = n + 1
      local a, t = p.src, p:table().src
      if a ~= t or p.src ~= t then bad[#bad + 1] = tostring(a) .. " ~= " .. tostring(t) end
      srcs[a] = true
    end)
    assert.is_true(run_until(function() return src:stats().ended end))
    src:close()
    os.remove(path)
    local distinct = 0
    for _ in pairs(srcs) do distinct = distinct + 1 end
    assert.same({}, bad)
    assert.equal(1000, n)
    assert.equal(600, distinct)
  end)

  it("applies the tcpdump filter and the script filter, and batches", function()
    local seen, batches = 0, 0
    local src = gw.packets { file = PCAP, filter = "udp" }
    src:batch(function(b)
      batches = batches + 1
      for i = 1, #b do
        assert.equal("udp", b[i].proto)
        seen = seen + 1
      end
    end)
    assert.is_true(run_until(function() return src:stats().ended end))
    -- as `tcpdump -r capture.pcap udp` counts: not the VLAN-tagged three
    assert.equal(8, seen)
    assert.is_true(batches >= 1)
    src:close()

    local kept = 0
    local src2 = gw.packets { file = PCAP, filter = function(p) return p.proto == "tcp" end }
    src2:each(function(p)
      assert.equal("tcp", p.proto)
      kept = kept + 1
    end)
    assert.is_true(run_until(function() return src2:stats().ended end))
    assert.equal(10, kept)
    src2:close()
  end)
end)
