"""piccolo's configuration module (`PICCOLO_CONF=appliance.piccolo_conf`)."""

from piccolo.conf.apps import AppRegistry

from appliance import db

DB = db.engine()
APP_REGISTRY = AppRegistry(apps=["appliance.piccolo_app"])
