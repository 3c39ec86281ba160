"""Readable random run names such as ``brave-eagle``, for run directories without a ``run_name``.

The name only has to be easy to say and tell apart at a glance: the directory's timestamp and run
number make it unique. Two short word lists do that in microseconds, where building coolname's
generator took about 30 ms of every run's start.
"""

from __future__ import annotations

import os
import random

ADJECTIVES = """
able agile amber ancient arctic ardent azure bold brave breezy bright brisk calm candid clever
cobalt cosmic crimson crisp curious daring dashing eager earnest electric elegant epic fancy
fearless fervent festive fierce flying fluffy frosty gentle gifted glad gleaming golden graceful
grand happy hardy hasty helpful heroic honest humble icy jolly jovial keen kind lively lucky
lunar magic mellow merry mighty misty modest nimble noble olive patient peppy placid plucky
polite proud quick quiet radiant rapid rare ready robust rosy royal rugged rustic scarlet serene
sharp shiny silent silver sleek smart snowy solar sparkling speedy spry steady stellar stoic
sturdy sunny swift tidy tranquil trusty valiant vivid warm wise witty zealous zesty
""".split()  # noqa: SIM905 - a block of words reads better than a list of quoted ones

ANIMALS = """
albatross alpaca antelope badger beaver bison bobcat buffalo camel caribou cheetah chipmunk
cobra condor cougar coyote crane cricket dingo dolphin donkey dove eagle eel egret elk falcon
ferret finch flamingo fox gazelle gecko gibbon giraffe gopher gorilla grouse gull hamster hare
hawk hedgehog heron hippo hornet ibex ibis iguana impala jackal jaguar jay kangaroo kestrel kiwi
koala lemur leopard lion llama lobster lynx macaw magpie mallard manatee marmot marten meerkat
mink mole moose narwhal newt ocelot octopus okapi orca osprey otter owl panda panther parrot
pelican penguin pheasant pigeon puffin puma quail rabbit raccoon raven reindeer robin salmon
seal shark sparrow squid stork swan tapir tiger toucan trout turtle viper walrus weasel whale
wolf wombat wren yak zebra
""".split()  # noqa: SIM905 - a block of words reads better than a list of quoted ones

# Its own stream, seeded from the OS: the run is seeded before it is named, and drawing from the
# global ``random`` would give every run with the same seed the same name and shift its random stream.
_NAMES = random.Random(os.urandom(16))


def random_run_name() -> str:
    """``<adjective>-<animal>``, never drawn from the global ``random``."""
    return f"{_NAMES.choice(ADJECTIVES)}-{_NAMES.choice(ANIMALS)}"
