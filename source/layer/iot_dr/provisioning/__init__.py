"""Device provisioning in either region: just-in-time registration of certificates signed by a registered CA
(``jitr``)."""
