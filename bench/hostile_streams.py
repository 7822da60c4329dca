#!/usr/bin/env python3
"""Write pcaps of TCP streams shaped to make a sniffer re-parse: `hostile_streams.py KIND FLOWS OUT`.

Each flow is a SYN from 10.0.0.66:<port> to 10.0.0.2:443, a first segment of 17 bytes (enough
to pick the parser), then one segment per remaining byte of a 32 KiB stream:

  tls   a ClientHello announcing 20,000 bytes, in records carrying one byte each
  junk  10-byte TLS records, each a complete handshake message of an unused type (99)
  ssh   an SSH banner, then a KEXINIT packet announcing 30,000 bytes
  http  an HTTP request head that never ends (8 KiB)

Standard library only; checksums are filled in (the sniffer does not check them).
"""
import struct
import sys

CAP = 32 * 1024


def checksum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def frame(sport: int, seq: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, 443, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     bytes([10, 0, 0, 66]), bytes([10, 0, 0, 2]))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp


def stream(kind: str) -> bytes:
    if kind == "tls":
        msg = bytes([1]) + (20000).to_bytes(3, "big") + b"\0" * 20000
        return b"".join(bytes([22, 3, 3, 0, 1, x]) for x in msg)[:CAP]
    if kind == "junk":
        return (bytes([22, 3, 3, 0, 5, 99, 0, 0, 1, 0x41]) * (CAP // 10 + 1))[:CAP]
    if kind == "ssh":
        s = b"SSH-2.0-x\r\n" + (30000).to_bytes(4, "big")
        return s + b"\0" * (CAP - len(s))
    if kind == "http":
        s = b"GET / HTTP/1.1\r\n"
        while len(s) < 8192:
            s += b"X-Pad: yes\r\n"
        return s
    raise SystemExit(f"unknown kind {kind!r}: tls, junk, ssh or http")


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    kind, flows, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    data = stream(kind)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 0

        def write(fr: bytes) -> None:
            nonlocal n
            f.write(struct.pack("<IIII", 1_700_000_000 + n // 1_000_000, n % 1_000_000, len(fr), len(fr)))
            f.write(fr)
            n += 1

        for k in range(flows):
            port = 20000 + k
            write(frame(port, 1000, 0x02, b""))
            write(frame(port, 1001, 0x18, data[:17]))
            for i, b in enumerate(data[17:]):
                write(frame(port, 1001 + 17 + i, 0x18, bytes([b])))


if __name__ == "__main__":
    main()
