"""The MQTT contract shared by the device and the dashboard: topics, schema names, broker settings.

Both sides import from here, so neither reaches into the other (DESIGN.md, "Contracts").
"""
