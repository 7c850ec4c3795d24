#!/usr/bin/env python3
"""MQTT over WebSocket peer for tests/tests/security_tls.rs, on the PyPI client paho-mqtt
(transport="websockets", path /mqtt, subprotocol mqtt). Connects, subscribes to TOPIC,
publishes PAYLOAD to it at QoS 1, and prints "received TOPIC PAYLOAD" when it comes back;
"connect refused RC" if the CONNACK refuses; exits non-zero on anything else.

usage: ws_client.py HOST PORT PATH USER PASS TOPIC PAYLOAD [CAFILE]   (CAFILE: use wss)
Environment: WS_BIND_ADDRESS, the local address to connect from (default: any).
"""
import os
import sys
import threading

import paho.mqtt.client as mqtt


def main():
    host, port, path, user, password, topic, payload = sys.argv[1:8]
    cafile = sys.argv[8] if len(sys.argv) > 8 else None
    done = threading.Event()
    result = {}

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ws-peer", transport="websockets", protocol=mqtt.MQTTv311)
    c.ws_set_options(path=path)
    if user:
        c.username_pw_set(user, password)
    if cafile:
        c.tls_set(ca_certs=cafile)

    def on_connect(client, userdata, flags, rc, properties=None):
        if rc != 0:
            result["line"] = f"connect refused {int(rc.value) if hasattr(rc, 'value') else rc}"
            done.set()
            return
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties=None):
        client.publish(topic, payload, qos=1)

    def on_message(client, userdata, msg):
        result["line"] = f"received {msg.topic} {msg.payload.decode()}"
        done.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect(host, int(port), keepalive=30, bind_address=os.environ.get("WS_BIND_ADDRESS", ""))
    c.loop_start()
    ok = done.wait(10)
    c.loop_stop()
    if not ok:
        print("timeout", flush=True)
        sys.exit(1)
    print(result["line"], flush=True)


if __name__ == "__main__":
    main()
