"""Operating the appliance: first boot, network, doctor, backup and restore."""
