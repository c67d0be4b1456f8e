"""RPMsg over virtio split rings, in both roles, over any shared memory.

Sans-IO pieces: ``vring`` (the split virtqueue, driver and device side; the only code that
writes rings), ``memory`` (address translation), ``layout`` (the OpenAMP Linux-machine preset)
and ``vdev`` (the resource table's status handshake). ``engine`` is what both RPMsg-over-virtio
engines share (``driver``, ``device``). The shared-memory link: ``kick`` (notification
channels), ``shm_link`` (the ring loop both roles run), ``shm_driver`` and ``shm_device`` (one
class per role: how a session starts and ends) and ``shm_pair`` (both in one process).
"""
