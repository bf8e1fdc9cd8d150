"""Layer 4d, the speed lab's studies: bench, breakdown, roofline, guidelines and lint, latency
tables. Built on deployment, measurement and counting; nothing below imports it."""
