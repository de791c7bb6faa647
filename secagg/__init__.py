"""Secure aggregation (SecAgg+): the client and server state machines
(:mod:`secagg.client`, :mod:`secagg.server`), their messages (:mod:`secagg.messages`),
pairwise and self masks (:mod:`secagg.masking`), the finite field and fixed-point
encoding (:mod:`secagg.quantization`) and Shamir sharing (:mod:`secagg.shamir`)."""
