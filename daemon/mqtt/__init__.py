"""The network side: MQTT link, topics, payloads in and out, delivery acknowledgements."""
