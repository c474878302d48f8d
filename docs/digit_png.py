"""Save a test digit as a PNG, to try ``xpnet predict`` on an image."""
import numpy as np
from PIL import Image  # pip install pillow

import xpnet as xn

data = xn.datasets.load("digits")
pixels = data.x_test[0].reshape(8, 8)          # values in [0, 1]
image = Image.fromarray((pixels * 255).astype(np.uint8))
image.resize((64, 64), Image.NEAREST).save("digit.png")
print(f"digit.png: a {data.class_names[data.y_test[0]]}, 64x64 pixels")
