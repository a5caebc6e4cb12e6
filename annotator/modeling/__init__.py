"""Networks only: backbones and the few-shot heads. No state beyond weights, no I/O, no Qt."""
