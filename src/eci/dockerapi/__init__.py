"""dockerapi room: a sans-IO model of one Docker API request (target, route, JSON body)."""
