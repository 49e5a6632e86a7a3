"""`explain` and `check`: a user's own prototxt, answered.

- user_nets.py: data layers into Input layers of the shape they would produce, and a case;
- explain.py: the per-layer table of flags with the rule behind each;
- hazards.py: what Caffe accepts silently that users trip over;
- graph.py: the net drawn with graphviz.
"""
