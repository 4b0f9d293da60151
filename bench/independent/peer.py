#!/usr/bin/python3
# Dual-stack TCP and UDP servers on PORT that answer each client with the
# address they saw it come from. Usage: peer.py TCPPORT UDPPORT
import socket, sys, threading
def tcp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(16)
    while True:
        c, a = s.accept(); c.sendall(("tcp peer %s\n" % a[0]).encode()); c.close()
def udp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        d, a = s.recvfrom(2048); s.sendto(("udp peer %s\n" % a[0]).encode(), a)
threading.Thread(target=tcp, args=(int(sys.argv[1]),), daemon=True).start()
udp(int(sys.argv[2]))
