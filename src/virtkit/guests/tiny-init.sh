#!/bin/busybox sh
# /init of the virtkit "tiny" test guest (PID 1, busybox ash).
# Markers on the serial console are read by the tests; keep their spelling.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /tmp /run /root /var/log /var/run
$bb mount -t proc proc /proc
$bb --install -s 2>/dev/null          # applet links; keeps our poweroff/reboot wrappers
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
read -r CMDLINE < /proc/cmdline

say() { echo "$*" > /dev/console; }
has() { case " $CMDLINE " in *" $1 "*) return 0 ;; esac; return 1; }

if has virtkit.probe=1; then           # the "does KVM work" probe: out as fast as possible
    say VIRTKIT-TINY-BOOT-OK
    say "VIRTKIT-CMDLINE: $CMDLINE"
    say VIRTKIT-PROBE-OK
    poweroff -f
fi

echo 4 4 1 7 > /proc/sys/kernel/printk  # errors only: keep module loading quiet
while read -r ko; do
    insmod "/lib/modules/$(uname -r)/$ko" 2>/dev/null
done < /etc/modules.load
hostname tiny
ip link set lo up

# ACPI power button -> /etc/acpi/PWRF/00000080 (needs button + evdev).  acpid
# scans /dev/input once at start: wait for the nodes, then until it holds them
# open, so a power-button press right after the boot marker is not lost.
n_ev() { set -- $1; [ -e "$1" ] && echo $# || echo 0; }
i=0
while [ $i -lt 50 ] && [ "$(n_ev '/dev/input/event*')" -lt "$(n_ev '/sys/class/input/event*')" ]
do sleep 0.1; i=$((i + 1)); done
acpid -f -c /etc/acpi -l /var/log/acpid.log </dev/null >/dev/null 2>&1 &
apid=$! want=$(n_ev '/dev/input/event*') i=0
while [ $i -lt 50 ] && [ "$(ls -l /proc/$apid/fd 2>/dev/null | grep -c /dev/input/event)" -lt "$want" ]
do sleep 0.1; i=$((i + 1)); done

# Online hot-plugged CPUs and memory blocks.
(
    while :; do
        for f in /sys/devices/system/cpu/cpu[0-9]*/online; do
            [ -e "$f" ] && read -r v < "$f" && [ "$v" = 0 ] || continue
            echo 1 > "$f" 2>/dev/null || continue
            d=${f%/online}; say "VIRTKIT-CPU-ONLINE ${d##*/}"
        done
        for f in /sys/devices/system/memory/memory[0-9]*/state; do
            [ -e "$f" ] && read -r v < "$f" && [ "$v" = offline ] || continue
            echo online > "$f" 2>/dev/null || continue
            d=${f%/state}; say "VIRTKIT-MEM-ONLINE ${d##*/}"
        done
        sleep 1
    done
) </dev/null >/dev/null 2>&1 &

if has virtkit.counter=1; then
    ( n=0; while :; do say "VIRTKIT-COUNTER $n"; n=$((n + 1)); sleep 1; done ) </dev/null &
fi

if has virtkit.dhcp=1; then
    ip link set eth0 up 2>/dev/null
    udhcpc -i eth0 -b -t 10 -T 1 -S -s /usr/share/udhcpc/default.script \
        </dev/null >/dev/null 2>&1
fi

say VIRTKIT-TINY-BOOT-OK
say "VIRTKIT-CMDLINE: $CMDLINE"

# Installer mode: only the install media's initrd has /etc/virtkit-installer (it
# names the gzipped boot disk and its size).  Write the disk to /dev/vda, whatever
# is on it, and reboot; the guest then boots from the disk (virtkit.installed=1).
# virtkit.noinstall=1 on the kernel command line skips it.
if [ -e /etc/virtkit-installer ] && ! has virtkit.noinstall=1; then
    . /etc/virtkit-installer
    say VIRTKIT-INSTALLER-START
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if [ ! -b /dev/vda ]; then
        say "VIRTKIT-INSTALL-FAILED no disk"
    elif [ "$(cat /sys/block/vda/size)" -lt $((size / 512)) ]; then
        say "VIRTKIT-INSTALL-FAILED disk smaller than $size bytes"
    elif gunzip -c "$payload" > /dev/vda && sync; then
        say VIRTKIT-INSTALL-DONE
        reboot -f
    else
        say "VIRTKIT-INSTALL-FAILED cannot write /dev/vda"
    fi
fi

# Interactive root shell on the serial port, respawned when it exits.  It runs in
# the foreground: ash starts background jobs with SIGINT ignored, which would make
# Ctrl+C useless in the shell.  poweroff/reboot/halt are -f wrappers in /sbin.
while :; do
    if [ -c /dev/ttyS0 ]; then
        setsid cttyhack sh -l </dev/ttyS0 >/dev/ttyS0 2>&1
    else
        setsid cttyhack sh -l
    fi
    sleep 0.2
done
