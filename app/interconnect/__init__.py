"""T/CEC 102 (中电联) interconnection: codec (envelope, AES, HMAC-MD5), partner dialects,
our served endpoints (``server``) and pushes to partners (``client``)."""
