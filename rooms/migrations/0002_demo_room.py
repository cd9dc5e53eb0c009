from __future__ import annotations

import time

from django.db import migrations

DEMO_STATE = {
    "room": "demo", "version": 1, "playing": False, "position": 0.0, "rate": 1.0,
    "media": {"url": "/media/demo.webm", "title": "Demo: test pattern with burned-in time",
              "duration": 60.0, "source": "demo"},
    "changed_by": None, "client_ms": 0.0,
}


def create_demo_room(apps, schema_editor):
    Room = apps.get_model("rooms", "Room")
    RoomEvent = apps.get_model("rooms", "RoomEvent")
    if Room.objects.filter(slug="demo").exists():
        return
    now_ms = time.time() * 1000.0
    state = {**DEMO_STATE, "anchor_ms": now_ms, "changed_ms": now_ms}
    room = Room.objects.create(slug="demo", name="Demo", state=state, version=1, playing=False)
    RoomEvent.objects.create(room=room, version=1, command={"type": "create"}, author=None,
                             accepted_ms=now_ms, state=state)


class Migration(migrations.Migration):
    dependencies = [("rooms", "0001_initial")]
    operations = [migrations.RunPython(create_demo_room, migrations.RunPython.noop)]
