"""`/healthz`: is every part of the appliance alive?"""
