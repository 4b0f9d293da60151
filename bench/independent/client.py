#!/usr/bin/python3
# client.py tcp|udp ADDR PORT: prints the server's answer (bounded: 3 s)
import socket, sys
proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(3)
try:
    if proto == "tcp":
        s.connect((addr, port)); print(s.recv(2048).decode().strip())
    else:
        s.sendto(b"hi", (addr, port)); print(s.recvfrom(2048)[0].decode().strip())
except Exception as e:
    print("client %s %s:%d: %s" % (proto, addr, port, e))
