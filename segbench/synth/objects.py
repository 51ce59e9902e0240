"""Street objects drawn from world-space boxes, faces and billboards (sizes in metres, see ``camera``).

One module per family of objects; this one gathers them for the scene.
"""
from segbench.synth.barriers import fence, guard_rail, wall
from segbench.synth.buildings import building
from segbench.synth.painter import Painter
from segbench.synth.people import figure, person, two_wheeler
from segbench.synth.plants import hedge, tree
from segbench.synth.street_furniture import (lamp_post, pole, sign, sign_post, street_box, traffic_light,
                                             traffic_light_post)
from segbench.synth.vehicles import bus, car, caravan, tram, truck

__all__ = ["Painter", "building", "bus", "car", "caravan", "fence", "figure", "guard_rail", "hedge", "lamp_post",
           "person", "pole", "sign", "sign_post", "street_box", "traffic_light", "traffic_light_post", "tram",
           "tree", "truck", "two_wheeler", "wall"]
