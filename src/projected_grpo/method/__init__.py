"""The method: two-block adapters, the hack direction v_hack from hand-authored pairs, the gradient interventions
(erase, route and their controls) and the registry of arms built from them."""
