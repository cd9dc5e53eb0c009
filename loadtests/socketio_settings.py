"""vsync's settings with the lab's socketio application (loadtests.socketio_app), for daphne:

    manage.py runserver --settings loadtests.socketio_settings
"""

from vsync.settings import *  # noqa: F403

ASGI_APPLICATION = "loadtests.socketio_app.application"
