"""Capture file layouts: pcapng blocks and the RPMsg capture record inside each packet.

A capture is a little-endian pcapng file (IETF draft-ietf-opsawg-pcapng): one section header,
one interface description per captured Device (``if_name`` = its URL, ``if_tsresol`` = 9:
nanosecond timestamps), and one enhanced packet block per message, link event or frame.

Link type: ``LINKTYPE_WIRESHARK_UPPER_PDU`` (252, "exported PDU"). Each packet starts with
exported-PDU tags that name the dissector to call (tag 12, "rpmsg"), so Wireshark hands the
rest to our Lua plugin with no user configuration: no ``DLT_USER`` table entry, no "decode
as". Without the plugin Wireshark still opens the file and shows the bytes. (A
``LINKTYPE_USER*`` value would need either a user table entry or the plugin claiming a value
other private formats may already use.) The tag TLVs are big-endian, unlike the rest of the
file (Wireshark ``epan/exported_pdu.h``, ``packet-exported_pdu.c``: ``tvb_get_ntohs``).

The payload after the tags is an RPMsg capture record (the Lua dissector
``rpmsg/capture/wireshark/rpmsg.lua`` mirrors it)::

    0  u8   version      1
    1  u8   type         1 message, 2 link event, 3 frame of the layer below
    2  u8   direction    0 none, 1 tx, 2 rx
    3  u8   kind         event: EVENT_KINDS index; frame: FRAME_KINDS index; message: 0
    4  u16  info_len     bytes of info text that follow this header
    6  u16  reserved     0
    8  info              UTF-8: event detail, or frame info as "key=value" lines
    .. data              message: the 16-byte RPMsg header and the payload; frame: its bytes
"""

from __future__ import annotations

import struct

from rpmsg.wire.layout import Layout

# pcapng ------------------------------------------------------------------------------------

#: Every block starts with its type and total length and ends with the length again.
BLOCK_HEADER = Layout("pcapng_block", [("type", "I"), ("total_len", "I")])
BLOCK_TRAILER = Layout("pcapng_block_trailer", [("total_len", "I")])
#: Section header block body (after the block header).
SHB = Layout("pcapng_shb", [("magic", "I"), ("major", "H"), ("minor", "H"),
                            ("section_len", "q")])
#: Interface description block body.
IDB = Layout("pcapng_idb", [("linktype", "H"), ("reserved", "H"), ("snaplen", "I")])
#: Enhanced packet block body (before the packet data).
EPB = Layout("pcapng_epb", [("interface_id", "I"), ("ts_high", "I"), ("ts_low", "I"),
                            ("captured_len", "I"), ("original_len", "I")])
#: Simple packet block body (read only; never written).
SPB = Layout("pcapng_spb", [("original_len", "I")])
OPTION = Layout("pcapng_option", [("code", "H"), ("length", "H")])

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_SPB = 0x00000003
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
VERSION_MAJOR = 1
VERSION_MINOR = 0

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
EPB_FLAGS = 2
#: ``epb_flags`` bits 0-1: packet direction.
EPB_INBOUND = 0x1
EPB_OUTBOUND = 0x2

LINKTYPE_WIRESHARK_UPPER_PDU = 252
#: The smallest and largest block the reader accepts (a block header, trailer and nothing
#: else; and a bound on memory for hostile files: RPMsg payloads are at most 64 KiB).
MIN_BLOCK_SIZE = BLOCK_HEADER.size + BLOCK_TRAILER.size
MAX_BLOCK_SIZE = 1 << 20

# Exported PDU tags (big-endian TLVs) ---------------------------------------------------------

EXP_PDU_TAG = struct.Struct(">HH")
EXP_PDU_TAG_END_OF_OPT = 0
EXP_PDU_TAG_DISSECTOR_NAME = 12  # "EXP_PDU_TAG_PROTO_NAME" in older Wireshark
DISSECTOR_NAME = "rpmsg"


def exported_pdu_tags(dissector: str = DISSECTOR_NAME) -> bytes:
    """The tag list in front of every packet: the dissector name, then end-of-options.

    The name is NUL-padded to a multiple of 4 and the length field counts the padding:
    Wireshark's reader advances by the length alone and reads the name as a C string.
    """
    name = dissector.encode("ascii")
    name += b"\0" * (-len(name) & 3)
    return (EXP_PDU_TAG.pack(EXP_PDU_TAG_DISSECTOR_NAME, len(name)) + name
            + EXP_PDU_TAG.pack(EXP_PDU_TAG_END_OF_OPT, 0))


#: The constant prefix of every packet we write (16 bytes).
EXPORTED_PDU_PREFIX = exported_pdu_tags()

# RPMsg capture record ------------------------------------------------------------------------

RECORD = Layout("rpmsg_capture_record", [("version", "B"), ("type", "B"), ("direction", "B"),
                                         ("kind", "B"), ("info_len", "H"), ("reserved", "H")])
RECORD_VERSION = 1
REC_MESSAGE = 1
REC_EVENT = 2
REC_FRAME = 3
DIR_NONE = 0
DIR_TX = 1
DIR_RX = 2
DIRECTIONS = {"tx": DIR_TX, "rx": DIR_RX}
DIRECTION_NAMES = {DIR_NONE: "", DIR_TX: "tx", DIR_RX: "rx"}
#: Event kinds by code (index); matches :data:`rpmsg.tap.EventKind`.
EVENT_KINDS = ("", "open", "link-up", "link-down", "restart", "broken", "drop", "close")
#: Frame kinds by code (index); matches :data:`rpmsg.tap.FrameKind`.
FRAME_KINDS = ("", "port", "uart-control", "spi", "ring")
EVENT_CODES = {name: i for i, name in enumerate(EVENT_KINDS) if name}
FRAME_CODES = {name: i for i, name in enumerate(FRAME_KINDS) if name}

__all__ = [
    "BLOCK_HEADER",
    "BLOCK_TRAILER",
    "BT_EPB",
    "BT_IDB",
    "BT_SHB",
    "BT_SPB",
    "BYTE_ORDER_MAGIC",
    "DIRECTIONS",
    "DIRECTION_NAMES",
    "DIR_NONE",
    "DIR_RX",
    "DIR_TX",
    "EPB",
    "EVENT_CODES",
    "EVENT_KINDS",
    "EXPORTED_PDU_PREFIX",
    "FRAME_CODES",
    "FRAME_KINDS",
    "IDB",
    "LINKTYPE_WIRESHARK_UPPER_PDU",
    "MAX_BLOCK_SIZE",
    "OPTION",
    "RECORD",
    "REC_EVENT",
    "REC_FRAME",
    "REC_MESSAGE",
    "SHB",
    "SPB",
    "exported_pdu_tags",
]
