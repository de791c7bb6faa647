"""Templates shipped with the node package (node.yaml), loaded with importlib.resources."""
