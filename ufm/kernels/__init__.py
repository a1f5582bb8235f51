"""Fast paths with a plain-jnp reference each (small batched factorisations, fused steps)."""
