"""Built-in plugins of ``rating``, registered through the ``rating.plugins`` entry-point
group exactly like third-party plugins: one module per pricing model or adapter."""
