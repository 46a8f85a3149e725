"""One ``sandpool run``, whoever parsed it: the request as data (``RunArgs``), where it reads
and writes (``Streams``) and ``execute``. The CLI runs it in its own process, ``sandpool
serve``/``server`` for a client on the serve socket; neither side imports the other."""
