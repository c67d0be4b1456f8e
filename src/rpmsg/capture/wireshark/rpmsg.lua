-- rpmsg.lua: Wireshark dissector for RPMsg captures written by python-rpmsg.
--
-- Install: `rpmsg wireshark --install` (copies this file to Wireshark's personal Lua plugin
-- folder), or run `wireshark -X lua_script:/path/to/rpmsg.lua capture.pcapng`.
--
-- The captures use link type 252 (exported PDU) whose tags name the dissector "rpmsg", so
-- Wireshark calls this one with no further configuration. Each packet carries one record
-- (layout: python package rpmsg, module rpmsg.wire.capture):
--
--   u8 version (1) | u8 type (1 message, 2 event, 3 frame) | u8 direction (0, 1 tx, 2 rx)
--   u8 kind | u16 info_len | u16 reserved | info text | data
--
-- Messages carry the 16-byte RPMsg header and the payload. Name-service messages (to
-- address 53) are decoded, and the services they announce name later messages; payloads of
-- NuttX's rpmsg-ping service are decoded. Frames of the layer below: RPMsg Port frames
-- (port header, CRC verdict, escapes), UART control bytes, SPI exchanges, virtio ring events.
-- All multi-byte fields are little-endian.

local p = Proto("rpmsg", "RPMsg")

local RECORD_TYPES = { [1] = "message", [2] = "event", [3] = "frame" }
local DIRECTIONS = { [0] = "", [1] = "tx", [2] = "rx" }
local EVENT_KINDS = { [1] = "open", [2] = "link-up", [3] = "link-down", [4] = "restart",
                      [5] = "broken", [6] = "drop", [7] = "close" }
local FRAME_KINDS = { [1] = "port", [2] = "uart-control", [3] = "spi", [4] = "ring" }
local NS_FLAGS = { [0] = "CREATE", [1] = "DESTROY", [2] = "CREATE_ACK" }
local PING_TYPES = { [0] = "request", [2] = "response" }
local SPI_CMDS = { [1] = "CONNECT", [2] = "AVAIL", [3] = "DATA", [4] = "SUSPEND",
                   [5] = "RESUME", [6] = "SHUTDOWN" }
local NS_ADDR = 53
local NS_SIZE = 40
local HDR_SIZE = 16
local PORT_HDR_SIZE = 8
local PING_NAME = "rpmsg-ping"

local f = {
    version = ProtoField.uint8("rpmsg.record.version", "Record version"),
    rtype = ProtoField.uint8("rpmsg.record.type", "Record type", base.DEC, RECORD_TYPES),
    kind = ProtoField.uint8("rpmsg.record.kind", "Record kind"),
    info_len = ProtoField.uint16("rpmsg.record.info_len", "Info length"),
    direction = ProtoField.string("rpmsg.direction", "Direction"),

    src = ProtoField.uint32("rpmsg.src", "Source address", base.HEX),
    dst = ProtoField.uint32("rpmsg.dst", "Destination address", base.HEX),
    reserved = ProtoField.uint32("rpmsg.reserved", "Reserved", base.HEX),
    len = ProtoField.uint16("rpmsg.len", "Payload length"),
    flags = ProtoField.uint16("rpmsg.flags", "Flags", base.HEX),
    service = ProtoField.string("rpmsg.service", "Service (from the name service)"),
    payload = ProtoField.bytes("rpmsg.payload", "Payload"),

    ns_name = ProtoField.string("rpmsg.ns.name", "Name"),
    ns_addr = ProtoField.uint32("rpmsg.ns.addr", "Address", base.HEX),
    ns_flags = ProtoField.uint32("rpmsg.ns.flags", "Flags", base.DEC, NS_FLAGS),

    ping_cmd = ProtoField.uint32("rpmsg.ping.cmd", "Command", base.HEX),
    ping_ack = ProtoField.bool("rpmsg.ping.ack", "Wants an answer", 32, nil, 0x1),
    ping_check = ProtoField.bool("rpmsg.ping.check", "Check data", 32, nil, 0x2),
    ping_random = ProtoField.bool("rpmsg.ping.random", "Random length", 32, nil, 0x4),
    ping_type = ProtoField.uint32("rpmsg.ping.type", "Type", base.HEX, PING_TYPES, 0xF0),
    ping_len = ProtoField.uint32("rpmsg.ping.len", "Length"),
    ping_cookie = ProtoField.uint64("rpmsg.ping.cookie", "Cookie", base.HEX),
    ping_data = ProtoField.bytes("rpmsg.ping.data", "Data"),

    event = ProtoField.string("rpmsg.event", "Link event"),
    event_detail = ProtoField.string("rpmsg.event.detail", "Detail"),

    frame_kind = ProtoField.string("rpmsg.frame.kind", "Frame kind"),
    frame_info = ProtoField.string("rpmsg.frame.info", "Info"),
    frame_data = ProtoField.bytes("rpmsg.frame.data", "Frame bytes"),

    port_crc = ProtoField.uint16("rpmsg.port.crc", "CRC", base.HEX),
    port_cmd = ProtoField.uint16("rpmsg.port.cmd", "Command"),
    port_avail = ProtoField.uint16("rpmsg.port.avail", "Available (credits)"),
    port_len = ProtoField.uint16("rpmsg.port.len", "Frame length"),
    port_crc_status = ProtoField.string("rpmsg.port.crc_status", "CRC verdict"),
    port_escapes = ProtoField.uint32("rpmsg.port.escapes", "Escaped bytes"),
    port_protocol = ProtoField.string("rpmsg.port.protocol", "UART protocol"),

    uart_control = ProtoField.uint8("rpmsg.uart.control", "Control byte", base.HEX),
    uart_control_name = ProtoField.string("rpmsg.uart.control_name", "Control"),

    spi_cmd = ProtoField.uint16("rpmsg.spi.cmd", "SPI command", base.DEC, SPI_CMDS),
    spi_credits = ProtoField.uint16("rpmsg.spi.credits", "Credits"),
    spi_name = ProtoField.string("rpmsg.spi.name", "Connect name"),
    spi_crc_status = ProtoField.string("rpmsg.spi.crc_status", "CRC verdict"),

    ring_event = ProtoField.string("rpmsg.ring.event", "Ring event"),
    ring_queue = ProtoField.string("rpmsg.ring.queue", "Queue"),
    ring_id = ProtoField.uint32("rpmsg.ring.id", "Descriptor id"),
    ring_len = ProtoField.uint32("rpmsg.ring.len", "Length"),
}
local field_list = {}
for _, v in pairs(f) do field_list[#field_list + 1] = v end
p.fields = field_list

local e = {
    bad_crc = ProtoExpert.new("rpmsg.port.bad_crc", "CRC mismatch: the receiver drops this frame",
                              expert.group.CHECKSUM, expert.severity.ERROR),
    bad_len = ProtoExpert.new("rpmsg.bad_len", "Length field does not match the bytes present",
                              expert.group.MALFORMED, expert.severity.ERROR),
    short = ProtoExpert.new("rpmsg.short", "Record too short",
                            expert.group.MALFORMED, expert.severity.ERROR),
    event = ProtoExpert.new("rpmsg.link_event", "Link event",
                            expert.group.SEQUENCE, expert.severity.NOTE),
    broken = ProtoExpert.new("rpmsg.broken", "Transport broken or message dropped",
                             expert.group.SEQUENCE, expert.severity.WARN),
    malformed_ns = ProtoExpert.new("rpmsg.ns.malformed", "Name-service message is not 40 bytes",
                                   expert.group.MALFORMED, expert.severity.WARN),
}
p.experts = { e.bad_crc, e.bad_len, e.short, e.event, e.broken, e.malformed_ns }

local f_iface = Field.new("frame.interface_id")

-- Name-service state: services[iface:side:addr] = name, built on the first pass;
-- the service found for each frame is kept so later (random-order) passes agree.
local services = {}
local frame_service = {}

function p.init()
    services = {}
    frame_service = {}
end

local function iface_id()
    local fi = f_iface()
    if fi then return tostring(fi.value) end
    return "0"
end

local function hex(v) return string.format("0x%x", v) end

-- The C string in a fixed-size field: up to the first NUL, or all of it when a peer left
-- none (TvbRange:stringz() would read past the field).
local function cstring(range)
    local raw = range:raw()
    local z = string.find(raw, "\0", 1, true)
    if z then return string.sub(raw, 1, z - 1) end
    return raw
end

-- Bit i (0-based) of a non-negative integer, without the bit32 library (gone in Lua 5.3+).
local function bit(v, i) return math.floor(v / 2 ^ i) % 2 end

-- Parse "key=value" lines of the info text; returns {key = {value, offset, length}}.
local function parse_info(tvb, offset, len)
    local out = {}
    if len <= 0 then return out end
    local text = tvb(offset, len):string()
    local pos = 1
    while pos <= #text do
        local nl = string.find(text, "\n", pos, true) or (#text + 1)
        local line = string.sub(text, pos, nl - 1)
        local eq = string.find(line, "=", 1, true)
        if eq then
            out[string.sub(line, 1, eq - 1)] = { string.sub(line, eq + 1), offset + pos - 1,
                                                  nl - pos }
        end
        pos = nl + 1
    end
    return out
end

local function info_item(tree, field, tvb, info, key, convert)
    local item = info[key]
    if not item then return nil end
    local value = item[1]
    if convert then value = tonumber(value) end
    if value == nil then return nil end
    tree:add(field, tvb(item[2], item[3]), value)
    return item[1]
end

local function dissect_ping(tvb, offset, len, tree)
    local t = tree:add(p, tvb(offset, len), "rpmsg-ping")
    t:set_text("rpmsg-ping")
    local cmd = tvb(offset, 4):le_uint()
    local ct = t:add_le(f.ping_cmd, tvb(offset, 4))
    ct:add_le(f.ping_type, tvb(offset, 4))
    ct:add_le(f.ping_ack, tvb(offset, 4))
    ct:add_le(f.ping_check, tvb(offset, 4))
    ct:add_le(f.ping_random, tvb(offset, 4))
    local plen = tvb(offset + 4, 4):le_uint()
    t:add_le(f.ping_len, tvb(offset + 4, 4))
    local cookie = tvb(offset + 8, 8):le_uint64()
    t:add_le(f.ping_cookie, tvb(offset + 8, 8))
    if len > 16 then t:add(f.ping_data, tvb(offset + 16, len - 16)) end
    local kind = (math.floor(cmd / 16) % 16 == 2) and "RSP" or "REQ"
    local ack = (bit(cmd, 0) == 1) and " ack" or ""
    return string.format("PING %s len %d cookie 0x%s%s", kind, plen, cookie:tohex(), ack)
end

-- The RPMsg header at offset and what follows; returns a summary for the Info column.
local function dissect_message(tvb, offset, pinfo, tree, direction)
    local avail = tvb:len() - offset
    if avail < HDR_SIZE then
        tree:add_proto_expert_info(e.short)
        return "short RPMsg message"
    end
    local src = tvb(offset, 4):le_uint()
    local dst = tvb(offset + 4, 4):le_uint()
    local plen = tvb(offset + 12, 2):le_uint()
    local t = tree:add(p, tvb(offset, avail), "RPMsg message")
    t:set_text(string.format("RPMsg %s, src %s, dst %s, len %d", direction, hex(src), hex(dst),
                             plen))
    t:add_le(f.src, tvb(offset, 4))
    t:add_le(f.dst, tvb(offset + 4, 4))
    t:add_le(f.reserved, tvb(offset + 8, 4))
    local li = t:add_le(f.len, tvb(offset + 12, 2))
    t:add_le(f.flags, tvb(offset + 14, 2))
    local have = avail - HDR_SIZE
    if plen > have then
        li:add_proto_expert_info(e.bad_len)
        plen = have
    end
    local poff = offset + HDR_SIZE
    local key = iface_id()
    local service
    if pinfo.visited then
        service = frame_service[pinfo.number]
    else
        -- Each side has its own address space: an announcement names an address of the
        -- side that sent it; a message goes from its direction's side to the other one.
        local other = (direction == "tx") and "rx" or "tx"
        if dst == NS_ADDR then service = "ns"
        else
            service = services[key .. ":" .. other .. ":" .. dst]
                      or services[key .. ":" .. direction .. ":" .. src]
        end
        frame_service[pinfo.number] = service
    end
    if service and service ~= "ns" then
        t:add(f.service, service):set_generated()
    end
    local summary
    if dst == NS_ADDR then
        if plen ~= NS_SIZE then
            t:add_proto_expert_info(e.malformed_ns)
            summary = string.format("NS malformed (%d bytes)", plen)
        else
            local nt = t:add(p, tvb(poff, NS_SIZE), "Name service")
            local name = cstring(tvb(poff, 32))
            nt:add(f.ns_name, tvb(poff, 32), name)
            local addr = tvb(poff + 32, 4):le_uint()
            nt:add_le(f.ns_addr, tvb(poff + 32, 4))
            local flags = tvb(poff + 36, 4):le_uint()
            nt:add_le(f.ns_flags, tvb(poff + 36, 4))
            local kind = NS_FLAGS[flags] or string.format("flags %d", flags)
            nt:set_text(string.format("Name service %s \"%s\" addr %s", kind, name, hex(addr)))
            if not pinfo.visited then
                local skey = key .. ":" .. direction .. ":" .. addr
                if flags == 1 then
                    if services[skey] == name then services[skey] = nil end
                else
                    services[skey] = name
                end
            end
            summary = string.format("NS %s \"%s\" addr %s", kind, name, hex(addr))
        end
    else
        local looks_ping = false
        if plen >= 16 then
            local cmd = tvb(poff, 4):le_uint()
            if service == PING_NAME then
                looks_ping = true
            elseif service == nil and tvb(poff + 4, 4):le_uint() == plen
                    and (cmd == 0x20 or cmd < 8) then
                -- no name service seen: a request (flag bits 0-2 only) or a response
                looks_ping = true
            end
        end
        if looks_ping then
            summary = dissect_ping(tvb, poff, plen, t)
        else
            if plen > 0 then t:add(f.payload, tvb(poff, plen)) end
            summary = string.format("%d bytes", plen)
        end
        if service then summary = service .. " " .. summary end
    end
    pinfo.cols.src:set(hex(src))
    pinfo.cols.dst:set(hex(dst))
    return string.format("%s %s -> %s %s", direction, hex(src), hex(dst), summary)
end

local function dissect_event(tvb, offset, info_len, pinfo, tree, kind)
    local name = EVENT_KINDS[kind] or string.format("event %d", kind)
    local t = tree:add(p, tvb(offset, info_len), "Link event: " .. name)
    local ei = t:add(f.event, tvb(offset, info_len), name)
    local detail = ""
    if info_len > 0 then
        detail = tvb(offset, info_len):string()
        t:add(f.event_detail, tvb(offset, info_len), detail)
    end
    if kind == 5 or kind == 6 then
        ei:add_proto_expert_info(e.broken)
    else
        ei:add_proto_expert_info(e.event)
    end
    if (kind == 3 or kind == 4) and not pinfo.visited then
        -- link-down or restart: the peer announces again, maybe at other addresses
        local prefix = iface_id() .. ":"
        for k in pairs(services) do
            if string.sub(k, 1, #prefix) == prefix then services[k] = nil end
        end
    end
    if detail ~= "" then return name .. ": " .. detail end
    return name
end

local function dissect_port(tvb, doff, dlen, pinfo, tree, info, direction)
    local t = tree:add(p, tvb(doff, dlen), "RPMsg Port frame")
    local verdict = info_item(t, f.port_crc_status, tvb, info, "crc")
    info_item(t, f.port_escapes, tvb, info, "escapes", true)
    info_item(t, f.port_protocol, tvb, info, "protocol")
    if dlen < PORT_HDR_SIZE then
        t:add_proto_expert_info(e.short)
        return "short port frame"
    end
    local ct = t:add_le(f.port_crc, tvb(doff, 2))
    t:add_le(f.port_cmd, tvb(doff + 2, 2))
    t:add_le(f.port_avail, tvb(doff + 4, 2))
    local flen = tvb(doff + 6, 2):le_uint()
    local li = t:add_le(f.port_len, tvb(doff + 6, 2))
    if flen ~= dlen then li:add_proto_expert_info(e.bad_len) end
    local summary = string.format("port frame %d bytes", dlen)
    if verdict == "bad" then
        ct:add_proto_expert_info(e.bad_crc)
        summary = summary .. " [BAD CRC]"
    end
    if dlen >= PORT_HDR_SIZE + HDR_SIZE then
        local sub = tvb(0, doff + dlen):tvb()
        summary = summary .. ": " .. dissect_message(sub, doff + PORT_HDR_SIZE, pinfo, tree,
                                                     direction)
    end
    return summary
end

local function dissect_spi(tvb, doff, dlen, pinfo, tree, info, direction)
    local t = tree:add(p, tvb(doff, dlen), "RPMsg Port SPI exchange")
    local verdict = info_item(t, f.spi_crc_status, tvb, info, "crc")
    if dlen < PORT_HDR_SIZE then
        t:add_proto_expert_info(e.short)
        return "short SPI frame"
    end
    local ct = t:add_le(f.port_crc, tvb(doff, 2))
    local cmd = tvb(doff + 2, 2):le_uint()
    t:add_le(f.spi_cmd, tvb(doff + 2, 2))
    t:add_le(f.spi_credits, tvb(doff + 4, 2))
    local flen = tvb(doff + 6, 2):le_uint()
    t:add_le(f.port_len, tvb(doff + 6, 2))
    local summary = string.format("SPI %s credits %d", SPI_CMDS[cmd] or tostring(cmd),
                                  tvb(doff + 4, 2):le_uint())
    if verdict == "bad" then
        ct:add_proto_expert_info(e.bad_crc)
        summary = summary .. " [BAD CRC]"
    end
    if cmd == 1 and dlen > PORT_HDR_SIZE then
        local nlen = math.min(dlen - PORT_HDR_SIZE, 32)
        local name = cstring(tvb(doff + PORT_HDR_SIZE, nlen))
        t:add(f.spi_name, tvb(doff + PORT_HDR_SIZE, nlen), name)
        summary = summary .. " \"" .. name .. "\""
    elseif cmd == 3 and flen >= PORT_HDR_SIZE + HDR_SIZE and flen <= dlen then
        local sub = tvb(0, doff + flen):tvb()
        summary = summary .. ": " .. dissect_message(sub, doff + PORT_HDR_SIZE, pinfo, tree,
                                                     direction)
    end
    return summary
end

local function dissect_frame(tvb, doff, dlen, pinfo, tree, kind, info, direction, ioff, ilen)
    local name = FRAME_KINDS[kind] or string.format("frame %d", kind)
    tree:add(f.frame_kind, tvb(doff, dlen), name)
    for key, item in pairs(info) do
        tree:add(f.frame_info, tvb(item[2], item[3]), key .. "=" .. item[1])
    end
    if kind == 1 then
        return dissect_port(tvb, doff, dlen, pinfo, tree, info, direction)
    elseif kind == 2 then
        local t = tree:add(p, tvb(doff, dlen), "UART control byte")
        local cname = info_item(t, f.uart_control_name, tvb, info, "name") or "?"
        local byte
        if dlen >= 1 then
            t:add(f.uart_control, tvb(doff, 1))
            byte = tvb(doff, 1):uint()
        elseif info["byte"] then
            byte = tonumber(info["byte"][1])
            if byte then t:add(f.uart_control, tvb(info["byte"][2], info["byte"][3]), byte) end
        end
        if byte then return string.format("UART %s (0x%02x)", cname, byte) end
        return "UART " .. cname
    elseif kind == 3 then
        return dissect_spi(tvb, doff, dlen, pinfo, tree, info, direction)
    elseif kind == 4 then
        local t = tree:add(p, tvb(ioff, ilen), "virtio ring event")
        local ev = info_item(t, f.ring_event, tvb, info, "event") or "?"
        local q = info_item(t, f.ring_queue, tvb, info, "queue") or "?"
        local id = info_item(t, f.ring_id, tvb, info, "id", true)
        local l = info_item(t, f.ring_len, tvb, info, "len", true)
        local s = string.format("ring %s queue %s", ev, q)
        if id then s = s .. " id " .. id end
        if l then s = s .. " len " .. l end
        return s
    end
    if dlen > 0 then tree:add(f.frame_data, tvb(doff, dlen)) end
    return name
end

function p.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol:set("RPMsg")
    local total = tvb:len()
    local root = tree:add(p, tvb(), "RPMsg capture record")
    if total < 8 then
        root:add_proto_expert_info(e.short)
        pinfo.cols.info:set("short RPMsg record")
        return total
    end
    root:add(f.version, tvb(0, 1))
    local rtype = tvb(1, 1):uint()
    root:add(f.rtype, tvb(1, 1))
    local dcode = tvb(2, 1):uint()
    local direction = DIRECTIONS[dcode] or "?"
    if direction ~= "" then root:add(f.direction, tvb(2, 1), direction) end
    local kind = tvb(3, 1):uint()
    root:add(f.kind, tvb(3, 1))
    local info_len = tvb(4, 2):le_uint()
    root:add_le(f.info_len, tvb(4, 2))
    if 8 + info_len > total then
        root:add_proto_expert_info(e.short)
        pinfo.cols.info:set("malformed RPMsg record")
        return total
    end
    local doff = 8 + info_len
    local dlen = total - doff
    local summary
    if rtype == 1 then
        summary = dissect_message(tvb, doff, pinfo, root, direction)
    elseif rtype == 2 then
        summary = dissect_event(tvb, 8, info_len, pinfo, root, kind)
    elseif rtype == 3 then
        local info = parse_info(tvb, 8, info_len)
        summary = direction .. " " .. dissect_frame(tvb, doff, dlen, pinfo, root, kind, info,
                                                    direction, 8, info_len)
    else
        summary = string.format("unknown record type %d", rtype)
    end
    pinfo.cols.info:set(summary)
    return total
end
