"""fakesysfs: a kernel-exact fake of Linux memory-hotplug and DAX sysfs, served over FUSE."""

__version__ = "0.1.0"
