#!/bin/bash
# make-box.sh ROOTFS_DIR OUT.box [VIRTUALBOX.box] — a libvirt Vagrant box
# from the appliance's root filesystem (as assemble-disk.sh left it), and,
# given a second name, a VirtualBox box of the same disk (a streamOptimized
# VMDK and the OVF descriptor Vagrant's virtualbox provider imports). The
# boxes alone get a `vagrant` user with Vagrant's well-known insecure key
# (Vagrant replaces it with a new key on the first `vagrant up`) and
# password-less sudo: the plain image has no such door. ROOTFS_DIR is
# modified.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOTFS=$(realpath "$1")
OUT=$(realpath -m "$2")
VBOX_OUT=${3:+$(realpath -m "$3")}
KEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub | head -1)
W=$(mktemp -d "${TMPDIR:-/tmp}/linebox-box.XXXXXX")
trap 'rm -rf "$W"' EXIT

systemd-nspawn --quiet --keep-unit --register=no --as-pid2 -D "$ROOTFS" \
    sh -ec 'id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo vagrant'
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$ROOTFS/etc/sudoers.d/vagrant"
chmod 440 "$ROOTFS/etc/sudoers.d/vagrant"
uid=$(stat -c %u "$ROOTFS/home/vagrant")
gid=$(stat -c %g "$ROOTFS/home/vagrant")
install -d -m 700 -o "$uid" -g "$gid" "$ROOTFS/home/vagrant/.ssh"
install -m 600 -o "$uid" -g "$gid" "$KEY" "$ROOTFS/home/vagrant/.ssh/authorized_keys"

"$HERE/assemble-disk.sh" "$ROOTFS" "$W/disk.raw" 8192 >/dev/null
qemu-img convert -c -O qcow2 "$W/disk.raw" "$W/box.img"
size_gb=$(( ($(stat -c %s "$W/disk.raw") + (1 << 30) - 1) >> 30 ))
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$size_gb" >"$W/metadata.json"
cat >"$W/Vagrantfile" <<'V'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "kvm"
    lv.memory = 1536
    lv.cpus = 2
  end
end
V
tar -C "$W" -cf "$OUT" metadata.json Vagrantfile box.img
echo "$OUT ($(du -h "$OUT" | cut -f1))"
[ -n "$VBOX_OUT" ] || exit 0

# VirtualBox: Debian's cloud kernel has ata_piix and virtio_net but neither
# ahci nor e1000, so the disk hangs on a PIIX4 IDE controller and the NIC is
# virtio (the OVF's adapter type is advisory: the box's Vagrantfile sets it).
V=$W/virtualbox
mkdir -p "$V"
qemu-img convert -O vmdk -o subformat=streamOptimized "$W/disk.raw" "$V/box-disk001.vmdk"
capacity=$(stat -c %s "$W/disk.raw")
cat >"$V/box.ovf" <<OVF
<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="box-disk001.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="$capacity" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="linebox">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>linebox</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>2 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>1536 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>1536 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>1536</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>ideController0</rasd:Caption>
        <rasd:Description>IDE Controller</rasd:Description>
        <rasd:ElementName>ideController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceSubType>virtio</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
OVF
echo '{"provider": "virtualbox"}' >"$V/metadata.json"
cat >"$V/Vagrantfile" <<'V'
Vagrant.configure("2") do |config|
  config.vm.provider :virtualbox do |vb|
    vb.memory = 1536
    vb.cpus = 2
    vb.default_nic_type = "virtio"
  end
end
V
tar -C "$V" -cf "$VBOX_OUT" box.ovf box-disk001.vmdk metadata.json Vagrantfile
echo "$VBOX_OUT ($(du -h "$VBOX_OUT" | cut -f1))"
