"""The appliance image: the .deb booted in a container, the Vagrantfile, the VM image."""
