#!/usr/bin/env python3
"""MQTT-SN peer for tests/tests/mqttsn_thirdparty.rs, built on the third-party PyPI client
`mqtt-sn-12` (module mqttsn12). It prints one line per observable event on stdout and reads
one command per line on stdin, so the Rust test can drive an MQTT publisher in between.

Scenarios:
  basic PORT   connect, REGISTER, publish QoS 0/1/2 on the registered topic, publish to a
               short topic, subscribe to a wildcard, print "ready", then poll until one
               PUBLISH arrives (after the gateway's REGISTER) and print it.
  qosm1 PORT   publish QoS -1 to predefined topic id 1 without connecting.
  security PORT CLIENT_ID ALLOWED DENIED
               connect as CLIENT_ID (print "connack ok" or "connack refused"); if in,
               publish QoS 1 to topic ALLOWED then DENIED, subscribe to each, printing
               "publish ok|refused TOPIC" and "subscribe ok|refused TOPIC".
  sleep PORT   connect (clean session off), subscribe, sleep 60 s, print "asleep", wait for
               "wake" on stdin, wake with PINGREQ(client id), print each PUBLISH until
               PINGRESP, then do it again once (nothing must come), and print "done".
"""
import sys
import time

from mqttsn12.client.MqttSnClient import MqttSnClient, MqttSnListener
from mqttsn12.MqttSnConstants import MqttSnConstants
from mqttsn12.packets import PingReqPacket, PublishPacket


def out(*words):
    print(*words, flush=True)


class Collect(MqttSnListener):
    def __init__(self):
        self.got = []

    def message_arrived(self, msg):
        self.got.append(msg)
        out("received", msg.get_topic_name(), msg.get_qos(), msg.get_payload().decode())


def client(port, client_id, clean=True):
    c = MqttSnClient()
    c.set_client_id(client_id)
    c.set_clean_session(clean)
    c.set_keep_alive(60)
    c.set_timeout(5)
    c.open("127.0.0.1", port)
    return c


def basic(port):
    c = client(port, "py-basic")
    c.send_connect()
    out("connack", 0)
    tid = c.send_register("sn/py/data")
    out("registered", tid)
    for qos in (0, 1, 2):
        c.send_publish_with_id(tid, MqttSnConstants.TOPIC_TYPE_NORMAL, f"qos{qos}".encode(), qos)
        out("published", qos)
    c.send_publish("sh", b"short", 1)
    out("published", "short")
    listener = Collect()
    # QoS 0: the library's polling() does not acknowledge QoS 1 (see wake()).
    c.send_subscribe("sn/cmd/#", 0, listener)
    out("ready")
    deadline = time.time() + 10
    while not listener.got and time.time() < deadline:
        c.polling()
        time.sleep(0.01)
    registered = {v: k for k, v in c.topic_map.items()}
    out("topic_map", "sn/cmd/x" in registered)
    c.send_disconnect()
    out("disconnected")
    c.close()


def qosm1(port):
    c = MqttSnClient()
    c.set_timeout(5)
    c.open("127.0.0.1", port)
    c.send_publish_predefined(1, b"no connect", -1)
    out("sent")
    c.close()


def wake(c, client_id):
    ping = PingReqPacket()
    ping.client_id = client_id
    c.send_packet(ping.encode())
    got = []
    deadline = time.time() + 5
    while time.time() < deadline:
        buf = c.receive_packet(True)
        kind = buf[3] if buf[0] == 1 else buf[1]
        if kind == MqttSnConstants.TYPE_PINGRESP:
            return got
        if kind == MqttSnConstants.TYPE_REGISTER:
            c.process_register(buf)
        elif kind == MqttSnConstants.TYPE_PUBLISH:
            p = PublishPacket()
            p.decode(buf)
            # The library's own polling() compares the shifted QoS with the flag constant and
            # so never acknowledges QoS 1; acknowledge here with its PUBACK encoder.
            if p.get_qos() == 1:
                c.send_puback(p, MqttSnConstants.ACCEPTED)
            got.append(p.get_data().decode())
            out("woke_with", p.get_data().decode())
    raise SystemExit("no PINGRESP")


def sleep(port):
    c = client(port, "py-sleeper", clean=False)
    c.send_connect()
    c.send_subscribe("sn/sleep", 1, Collect())
    c.send_disconnect(60)
    out("asleep")
    for line in sys.stdin:
        if line.strip() == "wake":
            break
    first = wake(c, "py-sleeper")
    out("pingresp", len(first))
    second = wake(c, "py-sleeper")
    out("pingresp", len(second))
    c.send_disconnect()
    out("done")
    c.close()


def security(port, client_id, allowed, denied):
    from mqttsn12.client.MqttSnClientException import MqttSnClientException
    c = client(port, client_id)
    try:
        c.send_connect()
    except MqttSnClientException:
        out("connack", "refused")
        return
    out("connack", "ok")
    for topic in (allowed, denied):
        tid = c.send_register(topic)
        try:
            c.send_publish_with_id(tid, MqttSnConstants.TOPIC_TYPE_NORMAL, b"x", 1)
            out("publish", "ok", topic)
        except MqttSnClientException:
            out("publish", "refused", topic)
    for topic in (allowed, denied):
        try:
            c.send_subscribe(topic, 0, Collect())
            out("subscribe", "ok", topic)
        except MqttSnClientException:
            out("subscribe", "refused", topic)
    c.send_disconnect()


if __name__ == "__main__":
    if sys.argv[1] == "security":
        security(int(sys.argv[2]), *sys.argv[3:6])
    else:
        {"basic": basic, "qosm1": qosm1, "sleep": sleep}[sys.argv[1]](int(sys.argv[2]))
