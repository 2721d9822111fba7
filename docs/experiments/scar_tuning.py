import numpy as np
from pathlib import Path
import deepoxymap.cardiac.scar as S
from deepoxymap.cardiac.emidec_check import load_emidec_case, TUNING_SEEDS
from deepoxymap.cardiac.masks import EMIDEC, PHANTOM, masks_from_labels
from deepoxymap.cardiac.scar_implant import implant_infarct
from deepoxymap.phantom.generate import simulate_subject
img,lab,ps=load_emidec_case(Path('../shared/data/real/emidec/sampleNegative'))
m=masks_from_labels(lab,EMIDEC)
imps=[implant_infarct(img,m.myocardium,m.lv_blood,ps,seed=sd) for sd in TUNING_SEEDS]
specs=[('healthy','normal')]*6+[('ischemic',t) for t in ('LAD-transmural','LAD-subendocardial','RCA-transmural','RCA-subendocardial','LCx-transmural','LCx-subendocardial')]*2+[('non-ischemic','DCM'),('non-ischemic','HCM')]
subs=[]
for i,(c,st) in enumerate(specs):
    s=simulate_subject(f'T{i}',c,st,'AB'[i%2],7,500+i,n_frames=4)
    lg=[x for x in s.series if x.key=='lge'][0]
    l=list(lg.labels.values())[0]; mm=masks_from_labels(l,PHANTOM)
    subs.append((c,lg.pixels[:,0].astype(np.float32),mm.myocardium,mm.scar))
orig=S.lower_mode_stats
for win in (0.0, 2.5, 3.0):
  S.lower_mode_stats=lambda v, w=win: orig(v, w)
  for name,kw in {'nsd3/2':{}, 'nsd3.5/2':{'n_sd':3.5}, 'nsd3/1.5':{'n_sd_extent':1.5}, 'nsd2.5/2':{'n_sd':2.5}}.items():
    d=[S.dice(S.quantify_scar(i.image,m.myocardium,pixel_spacing=ps,**kw).mask,i.scar) for i in imps]
    h=[];dl=[]
    for c,pim,pmy,psc in subs:
        r=S.quantify_scar(pim,pmy,pixel_spacing=(1.45,1.45),**kw)
        (h.append(r.percent_of_myocardium) if c=='healthy' else dl.append(S.dice(r.mask,psc)))
    print(f'win {win} {name:9s} implant {np.mean(d):.3f} min {np.min(d):.2f} | phantom lesion {np.nanmean(dl):.2f} | healthy max {max(h):.2f} mean {np.mean(h):.2f}', flush=True)
