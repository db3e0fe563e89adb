"""Supervised PyTorch replica of the bundle's vision encoder (conv stem + pre-norm ViT) on 2-frame clips.

usage: replica.py TRAIN_DIR TEST_DIR SIZE STEM(c1,c2,..) PATCH STEPS [DIM DEPTH]
"""
import sys, numpy as np, torch, torch.nn as nn, torch.nn.functional as F, time
from pathlib import Path
torch.set_num_threads(2); torch.manual_seed(0)
tr=Path(sys.argv[1]); te=Path(sys.argv[2]); size=int(sys.argv[3]); stem=[int(c) for c in sys.argv[4].split(',')]; patch=int(sys.argv[5]); steps=int(sys.argv[6])
dim=int(sys.argv[7]) if len(sys.argv)>7 else 64; depth=int(sys.argv[8]) if len(sys.argv)>8 else 3
SIT=['car_passing','dog_barking','door_slamming','fire','glass_breaking','machine_humming','people_talking','person_running','quiet_room','rain']
def load(d):
    raw=np.fromfile(d/"camera.u8",np.uint8).reshape(-1,size,size,3)
    rows=[l.rstrip('\n').split('\t') for l in open(d/'index.tsv')]
    I=[];Y=[]
    for i in range(1,len(rows)):
        n,t,s,st=rows[i]
        if int(t)%1_000_000_000 or '+' in s or rows[i-1][2]!=s or rows[i-1][3]!=st: continue
        I.append(i); Y.append(SIT.index(s))
    return raw, np.array(I), torch.tensor(Y)
rtr,Itr,Ytr=load(tr); rte,Ite,Yte=load(te)
mean=torch.tensor([0.481,0.458,0.408]).view(1,3,1,1,1); std=torch.tensor([0.269,0.261,0.276]).view(1,3,1,1,1)
def batch(raw,I):
    x=torch.from_numpy(np.stack([raw[I-1],raw[I]],1)).float()/255  # [b,2,H,W,3]
    return (x.permute(0,4,1,2,3)-mean)/std                         # [b,3,2,H,W]
class Block(nn.Module):
    def __init__(s,d):
        super().__init__(); s.l1=nn.LayerNorm(d); s.a=nn.MultiheadAttention(d,4,batch_first=True); s.l2=nn.LayerNorm(d); s.m=nn.Sequential(nn.Linear(d,4*d),nn.GELU(),nn.Linear(4*d,d))
    def forward(s,x):
        h=s.l1(x); x=x+s.a(h,h,h,need_weights=False)[0]; return x+s.m(s.l2(x))
class Enc(nn.Module):
    def __init__(s):
        super().__init__(); cs=[]; c=6
        for o in stem: cs+=[nn.Conv2d(c,o,3,2,1),nn.GELU()]; c=o
        s.stem=nn.Sequential(*cs); f=2**len(stem); p=patch//f; s.p=p
        s.proj=nn.Linear(c*p*p,dim); s.ln=nn.LayerNorm(dim); n=(size//patch)**2
        s.cls=nn.Parameter(torch.zeros(1,1,dim)); s.pos=nn.Parameter(torch.randn(1,n+1,dim)*0.02)
        s.blocks=nn.Sequential(*[Block(dim) for _ in range(depth)]); s.hl=nn.LayerNorm(dim); s.head=nn.Linear(dim,10)
    def forward(s,x):
        b=x.shape[0]; x=x.reshape(b,6,size,size); x=s.stem(x)
        x=F.unfold(x,s.p,stride=s.p).transpose(1,2); x=s.ln(s.proj(x))
        x=torch.cat([s.cls.expand(b,-1,-1),x],1)+s.pos; x=s.blocks(x); return s.head(s.hl(x[:,0]))
m=Enc(); opt=torch.optim.AdamW(m.parameters(),2e-3,betas=(0.9,0.95),weight_decay=0.05)
sched=torch.optim.lr_scheduler.OneCycleLR(opt,2e-3,total_steps=steps,pct_start=50/steps,anneal_strategy='cos')
print('params',sum(p.numel() for p in m.parameters()),'train',len(Itr),'test',len(Ite),flush=True)
g=np.random.default_rng(0); t0=time.time()
def evaluate():
    m.eval(); c=0
    with torch.no_grad():
        for i in range(0,len(Ite),256): c+=(m(batch(rte,Ite[i:i+256])).argmax(1)==Yte[i:i+256]).sum().item()
    m.train(); return c/len(Ite)
for step in range(1,steps+1):
    j=g.integers(0,len(Itr),64); x=batch(rtr,Itr[j])
    if g.random()<0.5: x=x.flip(-1)
    loss=F.cross_entropy(m(x),Ytr[j]); opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step(); sched.step()
    if step%500==0 or step==steps: print(f'step {step} loss {loss.item():.3f} test {evaluate():.3f} {time.time()-t0:.0f}s',flush=True)
