"""Central supervision stores (design §7): the ``Store`` contract and its SQL adapter."""
