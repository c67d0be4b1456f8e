"""RPMsg over virtio split rings, in both roles, over any shared memory.

``vring`` holds the split virtqueue (driver and device side), ``memory`` the address
translation, ``device``/``driver`` the RPMsg-over-virtio engines, ``kick`` the notification
channels and ``layout`` the OpenAMP Linux-machine preset.
"""
