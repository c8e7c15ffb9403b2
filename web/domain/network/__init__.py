"""The appliance's own address (issue #7): DHCP or a static address, set by
the operator and written as a systemd-networkd file by appliance.ops.network."""
