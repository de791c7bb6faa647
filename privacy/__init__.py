"""Privacy maths with no party attached: the RDP accountant and its spends
(:mod:`privacy.accounting`), distributed discrete Gaussian noise shares and their
effective multiplier (:mod:`privacy.distributed_noise`), and enterprise-level accounting
(:mod:`privacy.enterprise_accounting`)."""
