"""Probe for issue 4: does a VGG19-topology net WITH BatchNorm learn end to end from scratch?

Not product code. Uses the 96 px preprocessing cache that `deepoxymap train` writes under
data/study/.cache and the same hold-out split (seed 0). Slice-level validation metrics.
Usage: .venv/bin/python docs/experiments/vgg19bn_probe.py LR WIDTH EPOCHS  (run: 1e-3 0.5 30)
"""
import sys, time, glob, numpy as np, keras, tensorflow as tf
from deepoxymap import CLASSES
from deepoxymap.cohort import read_manifest
from deepoxymap.model.splits import holdout_split
from sklearn.metrics import roc_auc_score
tf.config.threading.set_inter_op_parallelism_threads(1)
d=[p for p in glob.glob("data/study/.cache/*") if np.load(glob.glob(p+"/*.npz")[0])["x"].shape[1]==96][0]
recs=read_manifest("data/study/manifest.csv")
sp=holdout_split([r.subject for r in recs],[r.label for r in recs],seed=0)
X={r.subject: np.load(f"{d}/{r.subject}.npz")["x"] for r in recs}; Y={r.subject:r.y for r in recs}
def XY(ids): return np.concatenate([X[s] for s in ids]), np.concatenate([[Y[s]]*len(X[s]) for s in ids])
xtr,ytr=XY(sp.train); xva,yva=XY(sp.val)
lr=float(sys.argv[1]); width=float(sys.argv[2]) if len(sys.argv)>2 else 1.0
keras.utils.set_random_seed(0)
inp=keras.Input((96,96,3)); x=inp
for b,(n,f) in enumerate([(2,64),(2,128),(4,256),(4,512),(4,512)],1):
    for i in range(n):
        x=keras.layers.Conv2D(int(f*width),3,padding="same",use_bias=False,name=f"block{b}_conv{i+1}")(x)
        x=keras.layers.BatchNormalization()(x); x=keras.layers.ReLU()(x)
    x=keras.layers.MaxPooling2D()(x)
x=keras.layers.GlobalAveragePooling2D()(x); x=keras.layers.Dropout(0.5)(x)
x=keras.layers.Dense(256,activation="relu")(x); x=keras.layers.Dropout(0.5)(x)
out=keras.layers.Activation("softmax")(keras.layers.Dense(4,name="logits")(x))
m=keras.Model(inp,out); m.compile(keras.optimizers.Adam(lr),"sparse_categorical_crossentropy",metrics=["accuracy"])
def aug(x,y):
    x=tf.image.random_flip_left_right(x); k=tf.random.uniform([],0,4,tf.int32); x=tf.image.rot90(x,k); return x,y
ds=tf.data.Dataset.from_tensor_slices((xtr,ytr)).shuffle(500,seed=0).map(aug).batch(16)
cw={k: len(ytr)/(4*max(1,(ytr==k).sum())) for k in range(4)}
t0=time.time()
for ep in range(int(sys.argv[3]) if len(sys.argv)>3 else 20):
    h=m.fit(ds,epochs=1,verbose=0,class_weight=cw)
    p=m.predict(xva,verbose=0)
    print(ep, round(h.history["loss"][0],3), round(h.history["accuracy"][0],3), "val acc", round((p.argmax(1)==yva).mean(),3), "auc", [round(roc_auc_score(yva==k,p[:,k]),2) for k in range(4)], f"{time.time()-t0:.0f}s", flush=True)
